"""Training: the two steps of the GAN game, ``fit`` around them, and the book's other loops.

Taught in ``book/04_implementation.ipynb`` (GAN training is a two-player minimax game, Goodfellow et al.
2014, https://arxiv.org/abs/1406.2661, played by alternating gradient steps). One file per concern:

==================  ===========================================================================
``steps.py``        :func:`d_step` and :func:`g_step`, written out (the file chapter 4 opens)
``gan.py``          :func:`fit`: device, levers, data order, EMA, samples, checkpoints, resume
``loop.py``         :class:`Run`, the skeleton every loop shares (budget, bar, history, divergence)
``config.py``       :class:`TrainConfig` and :class:`TrainResult`
``levers.py``       the speed levers (:class:`SpeedLevers`, :func:`speed_settings`), in one group
``batches.py``      the data order: batches and noise as functions of ``(seed, step)``
``distributed.py``  DistributedDataParallel under ``torchrun``: the process group, DDP wrapping, rank 0
``sampling.py``     :func:`sample`, :func:`balanced_labels`
``refine.py``       :func:`refine_latents` (discriminator-driven latent refinement)
``checkpoints.py``  the run's checkpoint; :func:`load_generator`, :func:`load_discriminator`
``vae.py``          :func:`fit_vae` (chapter 3)
``pix2pix.py``      :func:`fit_pix2pix` (chapter 5b; also ``ganlab.translate``)
``toy.py``          :class:`ToyGame`, the 2-D game stepped by ``ganlab.viz.game_explorer`` (chapter 2)
``classifier.py``   :func:`fit_classifier`, the metrics' digit classifier
==================  ===========================================================================
"""
from . import distributed
from .batches import Batches, step_generator
from .checkpoints import load_discriminator, load_generator
from .classifier import ClassifierConfig, fit_classifier
from .config import CALLBACK_EVENTS, CHECKPOINT_NAME, UNLIMITED_STEPS, TrainConfig, TrainResult
from .gan import ema_decay, fit, lr_scale
from .levers import (PRECISIONS, SpeedLevers, autocast_context, make_optimizers, resolve_channels_last,
                     resolve_joint_d_batch, resolve_precision, speed_settings)
from .loop import Run
from .pix2pix import Pix2PixConfig, Pix2PixResult, fit_pix2pix, translation_step
from .refine import refine_latents
from .sampling import balanced_labels, sample
from .steps import d_step, frozen, g_step, optimizer_step
from .toy import ToyGame
from .vae import VAEConfig, VAEResult, fit_vae

__all__ = [
    "TrainConfig", "TrainResult", "fit", "d_step", "g_step", "sample", "balanced_labels", "refine_latents",
    "load_generator", "load_discriminator", "make_optimizers", "autocast_context", "resolve_precision",
    "speed_settings", "resolve_channels_last", "resolve_joint_d_batch", "SpeedLevers", "ema_decay",
    "lr_scale",
    "PRECISIONS", "CALLBACK_EVENTS", "CHECKPOINT_NAME", "UNLIMITED_STEPS", "Run", "Batches", "step_generator",
    "optimizer_step", "frozen", "VAEConfig", "VAEResult", "fit_vae", "Pix2PixConfig", "Pix2PixResult",
    "fit_pix2pix", "translation_step", "ToyGame", "ClassifierConfig", "fit_classifier", "distributed",
]
