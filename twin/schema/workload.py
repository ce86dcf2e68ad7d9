"""Jobs that run on the GPUs and the mitigations that shape their power: the input of twin.sim.workload.

Power levels are per GPU, as fractions of the GPU's TDP (`_pu`); the simulator multiplies by the TDP of the
job's GPU type from the catalog.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from twin.schema.base import Frozen

# Llama 3 405B pre-training: 419 unexpected interruptions in 54 days on 16,384 H100 GPUs
# ("The Llama 3 Herd of Models", Meta, 2024; shared/facts/reference-figures.md).
# 419 / (54 d * 24 h/d * 16,384 GPU) = 419 / 21,233,664 GPU-h = 1.973e-5 per GPU-hour
# (one job-wide interruption every ~3.1 h at 16,384 GPUs, every ~0.5 h at 100,000 GPUs).
LLAMA3_FAILURE_RATE_PER_GPU_H = 419 / (54 * 24 * 16_384)


class TrainingJob(Frozen):
    """A synchronous training job: every GPU alternates compute and communication in lock step."""

    name: str = Field(..., min_length=1, description="Unique job name (also seeds its random draws)")
    kind: Literal["training"] = "training"
    gpus: int = Field(..., gt=0, description="Number of GPUs the job holds")
    gpu_type: str | None = Field(
        None, description="Catalog name of the GPU, e.g. 'h100-sxm'; None = site default"
    )
    start_s: float = Field(
        0.0,
        description="Job start, s from the scenario start; the start ramp begins here. A job with "
        "start_s <= -ramp_s is already at full load when the scenario starts",
    )
    end_s: float | None = Field(
        None, description="Job end, s from the scenario start (ramp down ends here); None = runs on"
    )
    iteration_s: float = Field(
        2.0,
        gt=0,
        description="Period of one training iteration (compute + collective communication), s. Assumed: "
        "large-model steps take seconds; the Microsoft/OpenAI/NVIDIA power-stabilisation paper "
        "(arXiv 2508.14318) shows swings in the 0.1-2 Hz band",
    )
    compute_fraction_pu: float = Field(
        0.8,
        gt=0,
        lt=1,
        description="Share of each iteration spent in the compute phase. Assumed: large-scale LLM training "
        "overlaps most collectives with compute, leaving ~10-30 % of a step exposed communication",
    )
    p_compute_pu: float = Field(
        0.95,
        ge=0,
        le=1,
        description="Per-GPU power in the compute phase, fraction of TDP (assumed: near TDP, arXiv 2508.14318)",
    )
    p_comm_pu: float = Field(
        0.35,
        ge=0,
        le=1,
        description="Per-GPU power in the communication phase, fraction of TDP (assumed: far below TDP, arXiv 2508.14318)",
    )
    checkpoint_interval_s: float = Field(1800.0, gt=0, description="Time between checkpoints, s (assumed)")
    checkpoint_duration_s: float = Field(
        60.0, ge=0, description="Length of one checkpoint (I/O-bound, GPUs mostly wait), s (assumed)"
    )
    p_checkpoint_pu: float = Field(
        0.25, ge=0, le=1, description="Per-GPU power while checkpointing, fraction of TDP (assumed)"
    )
    failure_rate_per_gpu_h: float = Field(
        LLAMA3_FAILURE_RATE_PER_GPU_H,
        ge=0,
        description="Job-wide interruptions per GPU-hour; the job's rate is this times gpus. Default derived from "
        "Llama 3 405B: 419 unexpected interruptions in 54 days on 16,384 GPUs = 1.973e-5 per GPU-hour",
    )
    recovery_s: float = Field(
        600.0,
        ge=0,
        description="Time the whole job sits idle after an interruption before restarting, s (assumed)",
    )
    ramp_s: float = Field(
        30.0, ge=0, description="Length of the linear ramp at start, restart and end, s (assumed)"
    )
    seed: int = Field(
        0, description="Seed of the job's random draws (iteration phase, failures), mixed with the name"
    )

    @model_validator(mode="after")
    def _check_times(self) -> TrainingJob:
        if self.end_s is not None and self.end_s <= self.start_s:
            raise ValueError(f"end_s ({self.end_s}) must be after start_s ({self.start_s})")
        if self.checkpoint_duration_s >= self.checkpoint_interval_s:
            raise ValueError("checkpoint_duration_s must be shorter than checkpoint_interval_s")
        return self


class InferenceJob(Frozen):
    """Inference serving: a daily cycle of demand plus slow random variation, no lock-step swings."""

    name: str = Field(..., min_length=1, description="Unique job name (also seeds its random draws)")
    kind: Literal["inference"] = "inference"
    gpus: int = Field(..., gt=0, description="Number of GPUs the job holds")
    gpu_type: str | None = Field(
        None, description="Catalog name of the GPU, e.g. 'h100-sxm'; None = site default"
    )
    p_mean_pu: float = Field(
        0.5, ge=0, le=1, description="Daily mean per-GPU power, fraction of TDP (assumed)"
    )
    daily_amplitude_pu: float = Field(
        0.15, ge=0, le=0.5, description="Amplitude of the daily cosine, fraction of TDP (assumed)"
    )
    peak_hour: float = Field(
        20.0, ge=0, lt=24, description="Local clock hour of the daily peak, h (assumed: evening)"
    )
    noise_pu: float = Field(
        0.02,
        ge=0,
        le=0.5,
        description="Standard deviation of the random variation of the job's mean per-GPU power, fraction of TDP (assumed)",
    )
    noise_tau_s: float = Field(
        60.0, gt=0, description="Correlation time of that random variation (first-order), s (assumed)"
    )
    seed: int = Field(0, description="Seed of the noise, mixed with the name")

    @model_validator(mode="after")
    def _check_levels(self) -> InferenceJob:
        lo, hi = self.p_mean_pu - self.daily_amplitude_pu, self.p_mean_pu + self.daily_amplitude_pu
        if lo < 0.0 or hi > 1.0:
            raise ValueError(
                f"p_mean_pu +/- daily_amplitude_pu spans {lo:.3f}..{hi:.3f}, must stay within 0..1"
            )
        return self


Job = Annotated[TrainingJob | InferenceJob, Field(discriminator="kind")]


class Mitigations(Frozen):
    """Measures that smooth the site's power swings. None = not used."""

    gpu_power_floor_pu: float | None = Field(
        None,
        gt=0,
        le=1,
        description="GPU power smoothing floor: while a job holds its GPUs they burn at least this fraction of "
        "TDP (GB200 offers 20-90% of TDP, arXiv 2508.14318)",
    )
    gpu_ramp_limit_pu_s: float | None = Field(
        None,
        gt=0,
        description="Largest change of per-GPU power, fractions of TDP per second, up and down (GB200 ramp control)",
    )
    filler_load_pu: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Filler work fills the running job's troughs up to this fraction of TDP "
        "(costs about 5% performance, arXiv 2508.14318)",
    )
    battery_smoothing: bool = Field(
        False,
        description="Site battery smooths the swings (simulated at site level, not in the workload model)",
    )
