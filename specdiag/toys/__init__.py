r"""Small reference games: a bilinear game, the Dirac-GAN and a mixture-of-Gaussians GAN.

Each toy is an object with a :class:`~specdiag.Game` in its ``game`` attribute and a
``losses(batch)`` method (the game's loss closure), built by a factory function:

* :func:`bilinear_game` -> :class:`BilinearGame`: :math:`\min_x \max_y x^\top A y`;
  the spectrum of :math:`J` is :math:`\pm i\sigma_k(A)` and :math:`|n - m|` zeros at
  every point (:meth:`BilinearGame.eigenvalues`).
* :func:`dirac_gan` -> :class:`DiracGAN`: the two-parameter Dirac-GAN, optionally with
  an R1 penalty or consensus optimisation; closed-form spectrum at the equilibrium
  (:func:`dirac_gan_eigenvalues`).
* :func:`mog_gan` -> :class:`MoGGAN`: an MLP GAN on a ring of 2-D Gaussians, from a
  few thousand to millions of parameters, with a sampler and a training loop; no
  known spectrum, a realistic game to probe.
* :func:`conv_gan` -> :class:`ConvGAN`: a DCGAN (transposed convolutions, BatchNorm)
  on synthetic 32 x 32 colour images (:func:`synthetic_images`), a few hundred thousand
  parameters by default.

Both GANs train through :mod:`specdiag.toys.training`: :func:`train_game` (any game,
simultaneous updates, one optimiser per player from the registry :data:`OPTIMIZERS`).

Sign convention: descent. Player :math:`i` minimises :math:`L_i`, the vector field is
:math:`v = (\nabla_{x_1} L_1, \dots, \nabla_{x_P} L_P)` and the game Jacobian is
:math:`J = \partial v / \partial x`; gradient flow is locally stable where every
eigenvalue of :math:`J` has positive real part. (Mescheder et al. use the ascent
convention: their Jacobian is :math:`-J`.)

Examples
--------
>>> import specdiag as sd
>>> from specdiag import toys
>>> toy = toys.dirac_gan(loss="standard", r1=0.3)
>>> sd.eigs(sd.GameJacobian(toy.game), k=2).eigenvalues
tensor([0.1500+0.4770j, 0.1500-0.4770j], dtype=torch.complex128)
>>> toys.dirac_gan_eigenvalues("standard", r1=0.3)
((0.15+0.47696960070847...j), (0.15-0.47696960070847...j))
"""

from .bilinear import BilinearGame, bilinear_game
from .conv import ConvGAN, conv_gan, synthetic_images
from .dirac import DIRAC_LOSSES, DiracGAN, dirac_gan, dirac_gan_eigenvalues
from .mog import MOG_LOSSES, MoGGAN, mog_gan, mog_gan_parameter_count
from .nplayer import FourPlayerGame, SmoothMarket, four_player_game, smooth_market
from .training import (
    OPTIMIZERS,
    OptimizerSpec,
    make_optimizers,
    train_game,
    train_steps,
)

__all__ = [
    "BilinearGame",
    "bilinear_game",
    "DiracGAN",
    "dirac_gan",
    "dirac_gan_eigenvalues",
    "DIRAC_LOSSES",
    "MoGGAN",
    "mog_gan",
    "mog_gan_parameter_count",
    "MOG_LOSSES",
    "ConvGAN",
    "conv_gan",
    "synthetic_images",
    "FourPlayerGame",
    "four_player_game",
    "SmoothMarket",
    "smooth_market",
    "OPTIMIZERS",
    "OptimizerSpec",
    "make_optimizers",
    "train_game",
    "train_steps",
]
