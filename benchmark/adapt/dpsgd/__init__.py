"""DP-SGD adaptation methods (Opacus): ``dpsgd_ti``, ``dpsgd_lora`` and the non-private ``lora``.

* :mod:`~benchmark.adapt.dpsgd.opacus_glue`: Opacus glue any DP-SGD method reuses (per-example
  samplers for placeholder rows, compatibility and trainer checks, the lockstep Poisson
  loader, ``make_private``);
* :mod:`~benchmark.adapt.dpsgd.module`: the LightningModule (one clipped, noised step per
  Poisson batch);
* :mod:`~benchmark.adapt.dpsgd.base`: :class:`DPSGDBase`, settings, checks, calibration and
  training, with hooks for the trained parameters, the dataset and the loss;
* :mod:`~benchmark.adapt.dpsgd.ti` and :mod:`~benchmark.adapt.dpsgd.lora`: the methods.

Import the submodules directly (``conf/method/*.yaml`` name them in ``_target_``).
"""
