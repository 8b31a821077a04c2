// MathJax for the API reference: the docstrings' :math: roles become \( ... \) and
// their ".. math::" blocks \[ ... \] (docs/reference/hooks.py), as pymdownx.arithmatex
// writes them.
window.MathJax = {
  tex: {inlineMath: [["\\(", "\\)"]], displayMath: [["\\[", "\\]"]], processEscapes: true},
  options: {ignoreHtmlClass: ".*|", processHtmlClass: "arithmatex"},
};
document$.subscribe(() => {
  MathJax.startup.output.clearCache();
  MathJax.typesetClear();
  MathJax.texReset();
  MathJax.typesetPromise();
});
