"""Poisson batch loaders for DP-SGD: exactly ``1/q`` batches an epoch, in lockstep across ranks.

Every batch keeps each record independently with probability ``q``, as the accountant
assumes; the number of batches an epoch is the integer ``1/q`` (never Opacus'
``int(1/q)``, which floating point can make one short), and under data parallel every
rank takes the same number of (possibly empty) batches, so the collectives stay in step.
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import DataLoader, Dataset


def _lockstep_sampler_class():
    from opacus.utils.uniform_sampler import DistributedUniformWithReplacementSampler

    class LockstepDistributedPoissonSampler(DistributedUniformWithReplacementSampler):
        """Opacus' distributed Poisson sampler, but yielding every local batch, empty ones too.

        Opacus skips a rank's empty local batch; under DDP the ranks then take different
        numbers of steps and the collectives (gradient all-reduce) fall out of step. Here
        every rank yields exactly ``num_batches`` batches: rank ``r`` keeps each record of
        its shard independently with probability ``q``, so the global batch is a Poisson
        sample of the whole set, as the accounting assumes.
        """

        def __iter__(self):
            if self.shuffle:
                g = torch.Generator().manual_seed(self.shuffle_seed + self.epoch)
                indices = torch.randperm(self.total_size, generator=g)
            else:
                indices = torch.arange(self.total_size)
            indices = indices[self.rank:self.total_size:self.num_replicas]
            for _ in range(self.num_batches):
                mask = torch.rand(self.num_samples, generator=self.generator) < self.sample_rate
                yield indices[mask.nonzero(as_tuple=False).reshape(-1)].tolist()

    return LockstepDistributedPoissonSampler


def steps_per_epoch(sample_rate: float) -> int:
    """``1/q`` as the integer it is by construction (``q = 1/ceil(n/B)``).

    Opacus' samplers default to ``int(1/q)``, which floating point makes one short for
    some n (``1/(1/93) = 92.999...``): a dropped batch each epoch, and Opacus would then
    book another sample rate than the noise was solved for.
    """
    steps = round(1.0 / sample_rate)
    if not math.isclose(1.0 / steps, sample_rate, rel_tol=1e-12):
        raise ValueError(f"sample rate {sample_rate} is not 1/k for an integer k")
    return steps


def lockstep_poisson_loader(dataset: Dataset, sample_rate: float, generator: torch.Generator) -> DataLoader:
    """A distributed Poisson loader whose ranks always take the same number of (possibly empty) batches."""
    from opacus.data_loader import dtype_safe, shape_safe, wrap_collate_with_empty
    from torch.utils.data import default_collate

    sampler = _lockstep_sampler_class()(total_size=len(dataset), sample_rate=sample_rate, generator=generator,
                                        steps=steps_per_epoch(sample_rate))
    first = dataset[0]
    collate = wrap_collate_with_empty(collate_fn=default_collate, batch_first=True, rand_on_empty=False,
                                      sample_empty_shapes=[(0, *shape_safe(x)) for x in first],
                                      dtypes=[dtype_safe(x) for x in first])
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate)
