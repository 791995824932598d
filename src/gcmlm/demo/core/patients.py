"""Latent risks, clinical features and the MLM outcome of synthetic patients.

Each patient has three independent standard-normal latent risks: ``r_ct`` (planted in the CT
tumour), ``r_path`` (planted in the slides) and ``r_clin`` (a weak clinical part). The outcome is

    mlm ~ Bernoulli(sigmoid(A * (r_ct + r_path + 0.3 * r_clin) + B)),  A = 3.0, B = -1.8.

The draws are stratified over the cohort (Latin hypercube: each patient's risks and outcome draw
are marginally exactly as above, but a cohort covers the range evenly), so small cohorts do not
come out with no events or with one modality's risk accidentally flat. Simulated over 2000
cohorts of 40: prevalence 35 % (sd 4.5 %), AUC of r_ct alone 0.81, r_path alone 0.81,
r_ct + r_path 0.94, and the sum beats both single risks in 99 % of cohorts (70 % with 12 patients).

Follow-up (:func:`follow_up`) agrees with the binary outcome: mlm = 1 <=> an event is observed.
A patient with MLM has it at a Weibull time (shape 1.5, scale 18 months x exp(-0.2 (risk - 3)),
so higher risk means earlier metastasis; mostly within 36 months, capped at the 60 months of
follow-up); a patient without MLM is censored at the last visit, uniform over 12-60 months.

A localised slide signal (:func:`planted_region`) is tied to the outcome on top of that: every
patient with MLM, and about one in ten without, has one small region (4-8 % of one slide's tissue)
of distinct morphology (a poorly differentiated focus, see gcmlm.demo.core.wsi). Mean pooling over
a slide's patches dilutes it; attention MIL can find it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from statistics import NormalDist

import numpy as np

OUTCOME_SLOPE = 3.0
OUTCOME_INTERCEPT = -1.8
CLINICAL_WEIGHT = 0.3
# Follow-up in months: time to MLM (Weibull, earlier with higher risk) or to the last visit.
FOLLOW_UP_MONTHS = (12.0, 60.0)
EVENT_SHAPE = 1.5
EVENT_SCALE_MONTHS = 18.0
EVENT_RISK_SLOPE = 0.2
EVENT_RISK_CENTRE = 3.0  # the scale is EVENT_SCALE_MONTHS at this linear predictor
# The planted slide region: probability of one by outcome (mlm 0, 1), its share of the slide's tissue.
REGION_PROBABILITY = (0.1, 1.0)
REGION_TISSUE_FRACTION = (0.04, 0.08)


@dataclass
class Patient:
    patient_id: str
    r_ct: float
    r_path: float
    r_clin: float
    risk: float  # the linear predictor
    p_mlm: float
    mlm: int
    clinical: dict

    def truth(self) -> dict:
        out = asdict(self)
        out.pop("clinical")
        return out


def patient_id(index: int, n: int) -> str:
    return f"GC{index + 1:0{max(3, len(str(n)))}d}"


def stratified_normals(rng: np.random.Generator, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``k`` independent N(0, 1) columns and one U(0, 1) column for ``n`` patients, Latin-hypercube style."""
    strata = np.stack([rng.permutation(n) for _ in range(k + 1)], axis=1)
    uniforms = (strata + rng.random((n, k + 1))) / n
    normal = NormalDist()
    return np.vectorize(normal.inv_cdf)(uniforms[:, :k]), uniforms[:, k]


def make_patients(cohort_rng: np.random.Generator, streams: list[np.random.Generator], ids: list[str]) -> list[Patient]:
    """Latent risks and outcomes from the cohort stream; clinical noise from each patient's own stream."""
    risks, draws = stratified_normals(cohort_rng, len(ids), 3)
    people = []
    for pid, rng, (r_ct, r_path, r_clin), u in zip(ids, streams, risks, draws, strict=True):
        risk = OUTCOME_SLOPE * (r_ct + r_path + CLINICAL_WEIGHT * r_clin) + OUTCOME_INTERCEPT
        p = float(1 / (1 + np.exp(-risk)))
        people.append(Patient(pid, float(r_ct), float(r_path), float(r_clin), float(risk), p, int(u < p),
                              _clinical(rng, float(r_ct), float(r_clin))))
    return people


def _clinical(rng: np.random.Generator, r_ct: float, r_clin: float) -> dict:
    """Plausible gastric-cancer covariates; T stage also follows tumour size (r_ct), as it would."""
    t_score = 0.7 * r_clin + 0.3 * r_ct + 0.6 * rng.standard_normal()
    n_score = 0.7 * r_clin + 0.7 * rng.standard_normal()
    return {
        "clin_age": int(np.clip(np.rint(63 + 10 * rng.standard_normal()), 28, 90)),
        "clin_sex_male": int(rng.random() < 0.68),
        "clin_t_stage": int(np.digitize(t_score, [-1.0, -0.2, 0.7]) + 1),  # T1..T4
        "clin_n_stage": int(np.digitize(n_score, [-0.3, 0.4, 1.1])),  # N0..N3
        "clin_cea": round(float(np.exp(1.0 + 0.35 * r_clin + 0.6 * rng.standard_normal())), 1),  # ng/mL
        "clin_lauren_diffuse": int(rng.random() < 1 / (1 + np.exp(0.4 - 0.5 * r_clin))),
    }


def follow_up(rng: np.random.Generator, person: Patient) -> dict:
    """Time (months) and event indicator for ``person``, from its own stream.

    Both draws are always made, so the stream is used the same way whatever the outcome. Keeping
    mlm = 1 <=> event observed makes the binary and the time-to-event analyses describe one cohort.
    """
    scale = EVENT_SCALE_MONTHS * np.exp(-EVENT_RISK_SLOPE * (person.risk - EVENT_RISK_CENTRE))
    event_time = min(float(scale * rng.weibull(EVENT_SHAPE)), FOLLOW_UP_MONTHS[1])
    last_visit = float(rng.uniform(*FOLLOW_UP_MONTHS))
    time = event_time if person.mlm else last_visit
    return {"mlm_time_months": round(max(time, 0.5), 1), "mlm_event": person.mlm}


def planted_region(rng: np.random.Generator, person: Patient) -> float | None:
    """The tissue fraction of ``person``'s planted slide region, or None for no region.

    Both draws are always made, so the stream is used the same way whatever the outcome."""
    u = float(rng.random())
    fraction = float(rng.uniform(*REGION_TISSUE_FRACTION))
    return fraction if u < REGION_PROBABILITY[person.mlm] else None
