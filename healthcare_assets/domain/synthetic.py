"""Seeded synthetic landing feeds for a Medicaid-style claims lakehouse.

Every file is a pure function of (SyntheticConfig, day): each feed draws from its
own numpy Generator seeded with (seed, day, stream), so days can be generated in
any order, in parallel, or again, and always give byte-identical files.

The population is static apart from daily enrolment events. Each member carries
a latent risk (see `member_roster`) that drives how often they claim and how
much their claims cost, so it can later serve as a learnable risk-score target.
Medical claims carry labelled fraud (FRAUD_PATTERNS); every feed can carry bad
records and exact duplicate lines, all counted in the day's manifest.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from bisect import bisect_right
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from enum import IntEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .sources import (
    CLAIM_TYPES,
    DATE,
    FRAUD_LABELS_FOLDER,
    FRAUD_PATTERNS,
    GENDERS,
    IMMUNIZATIONS,
    INT,
    MEDICAL_CLAIMS,
    MEMBER_ELIGIBILITY,
    PHARMACY_CLAIMS,
    PLAN_CODES,
    REGIONS,
    SOURCES,
    SPECIALTIES,
    STRING,
    Column,
    Source,
)

MANIFESTS_FOLDER = "_manifests"
BAD_RECORD_KINDS = ("malformed", "missing_key", "wrong_type", "out_of_range", "unknown_code", "future_date")
AGE_GROUPS = ("0-17", "18-34", "35-49", "50-64", "65+")
# Member attributes a bias group may be defined on ("age_group" is taken at the service date).
BIAS_GROUP_COLUMNS = ("age_group", "gender", "geographic_region", "plan_code", "smoker")


# --------------------------------------------------------------------------- public types


@dataclass(frozen=True)
class SyntheticConfig:
    """Knobs of the generator; frozen so a config can key the roster caches."""

    seed: int = 42
    roster_date: date = date(2026, 1, 1)  # day the full enrolment roster is delivered (first partition)
    num_members: int = 2_000
    num_providers: int = 150
    claims_per_day: int = 400  # mean legitimate medical claims per day (Poisson)
    rx_claims_per_day: int = 250
    immunizations_per_day: int = 40
    fraud_rate: float = 0.03  # share of medical claim rows that are injected fraud
    bad_record_rate: float = 0.0  # share of rows in every file that are bad
    drift_start: date | None = None  # from this day on, distributions shift
    drift_strength: float = 0.0  # 0 = none, 1 = strong
    bias_group: tuple[str, str] | None = None  # e.g. ("geographic_region", "Southwest")
    bias_strength: float = 0.0  # makes that group's legitimate claims look anomalous and its risk scores unreliable

    def __post_init__(self) -> None:
        if self.num_members < 1:
            raise ValueError("num_members must be at least 1")
        if self.num_providers < len(SPECIALTIES):
            raise ValueError(f"num_providers must be at least {len(SPECIALTIES)} so every specialty has a provider")
        if min(self.claims_per_day, self.rx_claims_per_day, self.immunizations_per_day) < 0:
            raise ValueError("daily volumes cannot be negative")
        if not 0.0 <= self.fraud_rate < 1.0:
            raise ValueError("fraud_rate must be in [0, 1)")
        if not 0.0 <= self.bad_record_rate < 1.0:
            raise ValueError("bad_record_rate must be in [0, 1)")
        if self.drift_strength < 0.0 or self.bias_strength < 0.0:
            raise ValueError("drift_strength and bias_strength cannot be negative")
        if self.bias_group is not None and self.bias_group[0] not in BIAS_GROUP_COLUMNS:
            raise ValueError(f"bias_group attribute must be one of {BIAS_GROUP_COLUMNS}, got {self.bias_group[0]!r}")


@dataclass
class DayManifest:
    day: str  # yyyy-mm-dd
    files: dict[str, str]  # source name -> path relative to the landing root
    rows: dict[str, int]  # source name -> data lines written (good + bad + duplicates)
    bad_rows: dict[str, dict[str, int]]  # source name -> {bad record kind: count}
    duplicate_rows: dict[str, int]  # source name -> exact copies of good lines
    fraud: dict[str, int]  # fraud pattern -> labelled claims

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DayManifest:
        return cls(
            day=data["day"],
            files=dict(data["files"]),
            rows={name: int(count) for name, count in data["rows"].items()},
            bad_rows={name: {kind: int(n) for kind, n in kinds.items()} for name, kinds in data["bad_rows"].items()},
            duplicate_rows={name: int(count) for name, count in data["duplicate_rows"].items()},
            fraud={pattern: int(count) for pattern, count in data["fraud"].items()},
        )


@dataclass
class DayData:
    """One day of feeds in memory, exactly as `write_landing_day` writes them."""

    day: date
    lines: dict[str, list[str]]  # source name -> lines without newline (CSV header first)
    fraud_labels: list[tuple[str, str]]  # (claim_id, fraud_pattern)
    manifest: DayManifest

    @property
    def fraud_label_lines(self) -> list[str]:
        return ["claim_id,fraud_pattern", *(f"{claim_id},{pattern}" for claim_id, pattern in self.fraud_labels)]


def landing_file_path(source: Source, day: date) -> str:
    """Path of a feed file relative to the landing root."""
    return f"{source.name}/{day.isoformat()}/{source.file_prefix}_{day:%Y%m%d}.{source.file_format}"


def fraud_labels_file_path(day: date) -> str:
    return f"{FRAUD_LABELS_FOLDER}/{day.isoformat()}/fraud_labels_{day:%Y%m%d}.csv"


def manifest_file_path(day: date) -> str:
    return f"{MANIFESTS_FOLDER}/{day.isoformat()}.json"


def age_group(age_years: int) -> str:
    if age_years < 0:
        raise ValueError(f"age cannot be negative: {age_years}")
    return AGE_GROUPS[bisect_right(_AGE_GROUP_STARTS, age_years)]


# --------------------------------------------------------------------------- reference tables

_AGE_GROUP_STARTS = (18, 35, 50, 65)  # first age of every group after "0-17"

# (youngest, oldest, share) of the member population at the roster date: Medicaid covers many children.
_AGE_MIX = ((0, 17, 0.38), (18, 34, 0.22), (35, 49, 0.16), (50, 64, 0.14), (65, 95, 0.10))
_GENDER_SHARES = (0.52, 0.46, 0.02)  # in GENDERS order
_REGION_SHARES = (0.18, 0.30, 0.22, 0.18, 0.12)  # in REGIONS order
_PLAN_SHARES_BY_AGE_GROUP = {
    "0-17": {"MCD-CHIP": 0.55, "MCD-TANF": 0.45},
    "18-34": {"MCD-TANF": 0.35, "MCD-EXP": 0.55, "MCD-ABD": 0.10},
    "35-49": {"MCD-TANF": 0.25, "MCD-EXP": 0.55, "MCD-ABD": 0.17, "MCD-LTC": 0.03},
    "50-64": {"MCD-TANF": 0.10, "MCD-EXP": 0.55, "MCD-ABD": 0.28, "MCD-LTC": 0.07},
    "65+": {"MCD-ABD": 0.60, "MCD-LTC": 0.40},
}
_ON_ROSTER_SHARE = 0.90  # the rest enrol during the year after the roster date
_TERMINATED_SHARE = 0.053  # slightly above 5%: a term drawn before a late enrolment is dropped

_FEMALE_NAMES = (
    "Mary Patricia Jennifer Linda Elizabeth Barbara Susan Jessica Sarah Karen Lisa Nancy Betty Sandra Ashley "
    "Emily Donna Michelle Carol Amanda Melissa Deborah Stephanie Maria Sophia Olivia Emma Ava Isabella Mia "
    "Camila Valeria Aaliyah Keisha Mei Priya Fatima Rosa Lucia Grace"
).split()
_MALE_NAMES = (
    "James Robert John Michael David William Richard Joseph Thomas Christopher Charles Daniel Matthew Anthony "
    "Mark Steven Andrew Joshua Kevin Brian Jose Luis Carlos Juan Miguel Liam Noah Elijah Mateo Ethan Jamal "
    "Darnell Wei Raj Ahmed Omar Diego Samuel Isaac Tyrone"
).split()
_LAST_NAMES = (
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez Wilson "
    "Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark Ramirez Lewis "
    "Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams Nelson Baker Hall "
    "Rivera Campbell Mitchell Carter Roberts Begay Yazzie Tsosie Patel Kim Chen Singh Okafor Mensah Silva"
).split()
_STREET_NAMES = (
    "Maple Oak Pine Cedar Elm Washington Lincoln Jefferson Park Lake Hill Main Church Walnut Spring Sunset "
    "Highland Ridge River Meadow Forest Willow Chestnut Mill Center Franklin Madison Jackson Cherry Hickory"
).split()
_STREET_SUFFIXES = ("St", "Ave", "Rd", "Ln", "Dr", "Ct", "Way", "Blvd", "Pl", "Ter")
# (city, first three zip digits) per region, in REGIONS order; no commas so CSV needs no quoting.
_CITIES = (
    (("Albany", "122"), ("Hartford", "061"), ("Providence", "029"), ("Scranton", "185")),
    (("Atlanta", "303"), ("Charlotte", "282"), ("Jacksonville", "322"), ("Memphis", "381")),
    (("Columbus", "432"), ("Indianapolis", "462"), ("Omaha", "681"), ("Wichita", "672")),
    (("Phoenix", "850"), ("Albuquerque", "871"), ("El Paso", "799"), ("Tucson", "857")),
    (("Portland", "972"), ("Spokane", "992"), ("Boise", "837"), ("Tacoma", "984")),
)

# Chronic conditions: prevalence is logistic in age, bmi and smoking.
# (name, ICD-10, log-odds at age 45 / bmi 29 / non-smoker, per decade of age, per bmi point, if smoker)
_CONDITIONS = (
    ("diabetes", "E11.9", -2.3, 0.45, 0.08, 0.2),
    ("hypertension", "I10", -1.2, 0.55, 0.06, 0.3),
    ("asthma", "J45.909", -2.2, -0.10, 0.03, 0.4),
    ("copd", "J44.9", -3.6, 0.60, 0.00, 1.6),
    ("chf", "I50.9", -4.4, 0.75, 0.04, 0.5),
    ("ckd", "N18.3", -3.6, 0.65, 0.03, 0.3),
    ("depression", "F32.9", -1.9, 0.10, 0.02, 0.5),
)
_CONDITION_NAMES = tuple(name for name, *_ in _CONDITIONS)
_CONDITION_COLUMNS = tuple(f"has_{name}" for name in _CONDITION_NAMES)

_PROVIDER_SPECIALTY_SHARES = (0.22, 0.15, 0.14, 0.07, 0.07, 0.10, 0.06, 0.07, 0.05, 0.07)  # SPECIALTIES order
_PHANTOM_PROVIDER_COUNT = 5
_OUT_OF_REGION_VISIT_SHARE = 0.10

_CLAIM_TYPE_SHARES = {"professional": 0.70, "outpatient": 0.15, "emergency": 0.10, "inpatient": 0.05}
# Mix the claim types move toward at drift_strength 1: more acute care.
_DRIFTED_CLAIM_TYPE_SHARES = {"professional": 0.50, "outpatient": 0.15, "emergency": 0.22, "inpatient": 0.13}
assert set(_CLAIM_TYPE_SHARES) == set(CLAIM_TYPES)

# Diagnosis severity 1 (minor) .. 3 (serious) sets the evaluation & management level billed.
_SEVERITY = {
    "Z00.00": 1, "Z00.129": 1, "J06.9": 1, "J02.9": 1, "H66.90": 1, "R51.9": 1,
    "N39.0": 2, "M54.50": 2, "M25.561": 2, "S93.401A": 2, "R10.9": 2, "I10": 2, "E11.9": 2,
    "F32.9": 2, "J45.909": 2,
    "N18.3": 3, "I50.9": 3, "J44.9": 3, "R07.9": 3, "S06.0X0A": 3, "S52.501A": 3, "J18.9": 3,
    "I48.91": 3, "I25.10": 3,
}  # fmt: skip
# Placeholder procedures resolved per claim: E/M level from severity, preventive visit from age.
_EM_LEVELS: dict[str, dict[int, tuple[str, ...]]] = {
    "EM": {1: ("99211", "99212", "99213"), 2: ("99212", "99213", "99214"), 3: ("99213", "99214", "99215")},
    "ER": {1: ("99281", "99282", "99283"), 2: ("99283", "99284"), 3: ("99284", "99285")},
    "IP": {1: ("99221",), 2: ("99221", "99222"), 3: ("99222", "99223")},
}
_PREVENTIVE_AGE_STARTS = (1, 5, 12, 18, 40, 65)
_PREVENTIVE_CODES = ("99391", "99392", "99393", "99394", "99395", "99396", "99397")

_MEDICAL_TEMPLATE_COLUMNS = (
    "claim_type",
    "specialty",
    "diagnosis",
    "procedure",
    "min_age",
    "max_age",
    "condition",
    "weight",
)
# The legitimate encounters: who bills what for which diagnosis. A template applies to a claim when the
# claim type matches, the patient's age is in range and the patient has the condition (if one is named).
_MEDICAL_TEMPLATES = (
    ("professional", "pediatrics", "Z00.129", "WELL", 0, 17, None, 3.0),
    ("professional", "pediatrics", "J06.9", "EM", 0, 17, None, 3.0),
    ("professional", "pediatrics", "H66.90", "EM", 0, 12, None, 2.0),
    ("professional", "pediatrics", "J02.9", "EM", 0, 17, None, 1.5),
    ("professional", "pediatrics", "J45.909", "EM", 0, 17, "asthma", 4.0),
    ("professional", "family_medicine", "Z00.00", "WELL", 18, 120, None, 2.0),
    ("professional", "family_medicine", "J06.9", "EM", 18, 120, None, 2.0),
    ("professional", "family_medicine", "R51.9", "EM", 18, 120, None, 1.0),
    ("professional", "family_medicine", "J02.9", "EM", 18, 120, None, 1.0),
    ("professional", "family_medicine", "N39.0", "EM", 18, 120, None, 1.0),
    ("professional", "family_medicine", "M54.50", "EM", 18, 120, None, 1.5),
    ("professional", "family_medicine", "I10", "EM", 18, 120, "hypertension", 2.0),
    ("professional", "family_medicine", "F32.9", "EM", 12, 120, "depression", 3.0),
    ("professional", "internal_medicine", "I10", "EM", 18, 120, "hypertension", 3.0),
    ("professional", "internal_medicine", "E11.9", "EM", 18, 120, "diabetes", 3.0),
    ("professional", "internal_medicine", "N18.3", "EM", 18, 120, "ckd", 2.0),
    ("professional", "endocrinology", "E11.9", "EM", 10, 120, "diabetes", 2.0),
    ("professional", "cardiology", "I50.9", "EM", 18, 120, "chf", 4.0),
    ("professional", "cardiology", "I10", "93000", 18, 120, "hypertension", 1.0),
    ("professional", "cardiology", "R07.9", "93000", 30, 120, None, 0.5),
    ("professional", "pulmonology", "J44.9", "EM", 35, 120, "copd", 4.0),
    ("professional", "pulmonology", "J45.909", "EM", 5, 120, "asthma", 1.0),
    ("professional", "orthopedics", "M25.561", "EM", 10, 120, None, 1.0),
    ("professional", "orthopedics", "S52.501A", "EM", 5, 120, None, 0.3),
    ("professional", "physical_therapy", "M54.50", "97110", 18, 120, None, 1.5),
    ("professional", "physical_therapy", "M25.561", "97110", 12, 120, None, 1.0),
    ("outpatient", "internal_medicine", "E11.9", "83036", 18, 120, "diabetes", 3.0),
    ("outpatient", "internal_medicine", "N18.3", "80053", 18, 120, "ckd", 3.0),
    ("outpatient", "family_medicine", "I10", "80053", 18, 120, "hypertension", 2.0),
    ("outpatient", "family_medicine", "Z00.00", "80053", 18, 120, None, 1.0),
    ("outpatient", "radiology", "R07.9", "71046", 18, 120, None, 1.0),
    ("outpatient", "radiology", "J18.9", "71046", 0, 120, None, 1.0),
    ("outpatient", "radiology", "J44.9", "71046", 35, 120, "copd", 1.5),
    ("outpatient", "radiology", "M25.561", "73721", 12, 120, None, 1.0),
    ("outpatient", "radiology", "S52.501A", "73110", 0, 120, None, 0.5),
    ("outpatient", "cardiology", "I50.9", "93306", 18, 120, "chf", 3.0),
    # Single lab tests ordered on their own are legitimate; billing a panel's components one by one is not.
    ("outpatient", "internal_medicine", "E11.9", "82947", 18, 120, "diabetes", 1.5),
    ("outpatient", "pediatrics", "E11.9", "82947", 10, 17, "diabetes", 1.0),
    ("outpatient", "internal_medicine", "N18.3", "82565", 18, 120, "ckd", 1.5),
    ("outpatient", "internal_medicine", "I10", "84132", 18, 120, "hypertension", 1.0),
    ("outpatient", "internal_medicine", "R53.83", "85025", 18, 120, None, 1.5),
    ("outpatient", "pediatrics", "R53.83", "85025", 0, 17, None, 1.0),
    ("outpatient", "family_medicine", "N39.0", "81001", 18, 120, None, 1.5),
    ("emergency", "emergency_medicine", "J06.9", "ER", 0, 120, None, 1.5),
    ("emergency", "emergency_medicine", "H66.90", "ER", 0, 12, None, 1.0),
    ("emergency", "emergency_medicine", "R10.9", "ER", 0, 120, None, 2.0),
    ("emergency", "emergency_medicine", "R07.9", "ER", 18, 120, None, 2.0),
    ("emergency", "emergency_medicine", "S06.0X0A", "ER", 0, 120, None, 1.0),
    ("emergency", "emergency_medicine", "S52.501A", "ER", 0, 120, None, 1.0),
    ("emergency", "emergency_medicine", "S93.401A", "ER", 5, 120, None, 1.5),
    ("emergency", "emergency_medicine", "J18.9", "ER", 0, 120, None, 1.0),
    ("emergency", "emergency_medicine", "J45.909", "ER", 0, 120, "asthma", 2.0),
    ("emergency", "emergency_medicine", "J44.9", "ER", 35, 120, "copd", 2.0),
    ("emergency", "emergency_medicine", "I50.9", "ER", 18, 120, "chf", 2.0),
    ("inpatient", "pediatrics", "J18.9", "IP", 0, 17, None, 2.0),
    ("inpatient", "pediatrics", "J45.909", "IP", 0, 17, "asthma", 2.0),
    ("inpatient", "internal_medicine", "J18.9", "IP", 18, 120, None, 2.0),
    ("inpatient", "internal_medicine", "N18.3", "IP", 18, 120, "ckd", 1.5),
    ("inpatient", "internal_medicine", "E11.9", "IP", 18, 120, "diabetes", 1.0),
    ("inpatient", "cardiology", "I50.9", "IP", 18, 120, "chf", 4.0),
    ("inpatient", "cardiology", "I48.91", "IP", 40, 120, None, 1.0),
    ("inpatient", "cardiology", "I25.10", "IP", 40, 120, None, 0.5),
    ("inpatient", "pulmonology", "J44.9", "IP", 35, 120, "copd", 3.0),
    ("inpatient", "orthopedics", "S52.501A", "IP", 0, 120, None, 0.5),
)
# Specialties that legitimately treat each diagnosis; a phantom provider bills outside them.
_DIAGNOSIS_SPECIALTIES: dict[str, set[str]] = {}
for _template in _MEDICAL_TEMPLATES:
    _DIAGNOSIS_SPECIALTIES.setdefault(_template[2], set()).add(_template[1])

# Lab components of a comprehensive metabolic panel (80053) plus CBC and urinalysis: billing them one by one
# instead of as a panel is unbundling.
LAB_COMPONENTS = (
    "82947",
    "84132",
    "82565",
    "84295",
    "85025",
    "81001",
    "82040",
    "82310",
    "82374",
    "84450",
    "84460",
    "84520",
)
_UNBUNDLING_DIAGNOSES = ("E11.9", "I10", "N18.3", "R53.83")
_MINOR_DIAGNOSES = ("J06.9", "R51.9", "J02.9", "Z00.00")
# Procedures that rarely fit the diagnosis; the bias knob sprinkles them over one group's legitimate claims.
_UNUSUAL_PROCEDURES = ("73721", "93306", "71046", "97110", "93000", "83036")

_FEES = {
    "99211": 25.0, "99212": 55.0, "99213": 90.0, "99214": 130.0, "99215": 185.0,
    "99281": 70.0, "99282": 120.0, "99283": 200.0, "99284": 340.0, "99285": 500.0,
    # inpatient codes carry the facility charge per day of stay
    "99221": 1900.0, "99222": 2500.0, "99223": 3300.0,
    "99391": 140.0, "99392": 140.0, "99393": 150.0, "99394": 160.0, "99395": 170.0, "99396": 185.0, "99397": 195.0,
    "97110": 45.0, "71046": 65.0, "73110": 70.0, "73721": 480.0, "93000": 35.0, "93306": 260.0,
    "80053": 28.0, "83036": 22.0,
    "82947": 10.0, "84132": 9.0, "82565": 10.0, "84295": 9.0, "85025": 14.0, "81001": 6.0,
    "82040": 9.0, "82310": 10.0, "82374": 9.0, "84450": 10.0, "84460": 10.0, "84520": 8.0,
}  # fmt: skip

# Shares of the injected fraud rows per pattern (unbundling rows come in groups of 4..8).
_FRAUD_SHARES = {"upcoding": 0.30, "duplicate_billing": 0.25, "phantom_provider": 0.15, "unbundling": 0.30}
assert set(_FRAUD_SHARES) == set(FRAUD_PATTERNS)

_DRUG_COLUMNS = (
    "drug_class",
    "ndc_code",
    "condition",
    "min_age",
    "max_age",
    "weight",
    "unit_price",
    "units_per_day",
    "maintenance",
)
# Maintenance drugs follow chronic conditions; acute drugs (antibiotics, pain) anyone can get.
_DRUGS = (
    ("antidiabetic", "00093-1048-01", "diabetes", 10, 120, 5.0, 0.12, 2.0, True),  # metformin
    ("antidiabetic", "00088-2220-33", "diabetes", 18, 120, 2.0, 9.50, 1.0, True),  # insulin glargine
    ("statin", "00071-0155-23", "diabetes", 40, 120, 2.0, 0.20, 1.0, True),  # atorvastatin
    ("antihypertensive", "68180-0513-01", "hypertension", 18, 120, 4.0, 0.10, 1.0, True),  # lisinopril
    ("antihypertensive", "00069-1530-30", "hypertension", 18, 120, 2.0, 0.15, 1.0, True),  # amlodipine
    ("statin", "00071-0155-23", "hypertension", 40, 120, 1.5, 0.20, 1.0, True),
    ("antihypertensive", "68180-0513-01", "ckd", 18, 120, 2.0, 0.10, 1.0, True),
    ("bronchodilator", "00173-0682-20", "asthma", 0, 120, 4.0, 2.10, 0.28, True),  # albuterol inhaler
    ("bronchodilator", "00597-0075-41", "copd", 35, 120, 4.0, 14.00, 1.0, True),  # tiotropium
    ("antidepressant", "16729-0213-01", "depression", 12, 120, 4.0, 0.15, 1.0, True),  # sertraline
    ("antidepressant", "00777-3105-02", "depression", 12, 120, 2.0, 0.20, 1.0, True),  # fluoxetine
    ("anticoagulant", "00003-0894-21", "chf", 18, 120, 3.0, 8.50, 2.0, True),  # apixaban
    ("antihypertensive", "00378-0018-01", "chf", 18, 120, 2.0, 0.20, 2.0, True),  # metoprolol
    ("other", "00054-4297-25", "chf", 18, 120, 2.0, 0.08, 1.0, True),  # furosemide
    ("antibiotic", "65862-0015-01", None, 0, 120, 3.0, 0.25, 3.0, False),  # amoxicillin
    ("antibiotic", "00069-3060-75", None, 0, 120, 1.5, 1.20, 1.0, False),  # azithromycin
    ("analgesic", "00904-5853-60", None, 12, 120, 2.0, 0.05, 3.0, False),  # ibuprofen
    ("analgesic", "00904-6730-60", None, 0, 120, 1.0, 0.04, 3.0, False),  # acetaminophen
    ("other", "00378-6150-93", None, 2, 120, 1.5, 0.05, 1.0, False),  # cetirizine
    ("other", "62175-0136-37", None, 18, 120, 1.5, 0.10, 1.0, True),  # omeprazole
)
_DISPENSING_FEE = 1.75

_VACCINE_COLUMNS = ("vaccine_code", "condition", "min_age", "max_age", "weight")
# Schedules by age, plus adult catch-up doses for members whose chronic condition calls for them.
_VACCINES = (
    ("FLU", None, 0, 120, 5.0),
    ("COVID19", None, 0, 120, 1.5),
    ("PNEUMO", None, 65, 120, 3.0),
    ("PNEUMO", "copd", 19, 64, 3.0),
    ("PNEUMO", "diabetes", 19, 64, 1.5),
    ("TDAP", None, 0, 6, 3.0),
    ("TDAP", None, 11, 12, 3.0),
    ("TDAP", None, 19, 120, 0.5),
    ("HPV", None, 9, 26, 3.0),
    ("MMR", None, 0, 6, 3.0),
    ("SHINGLES", None, 50, 120, 2.5),
    ("HEPB", None, 0, 1, 4.0),
    ("HEPB", "diabetes", 19, 59, 2.0),
)
_FLU_SEASON_MONTHS = (9, 10, 11, 12, 1, 2, 3)
_PHARMACY_ADMINISTERED_SHARE = 0.25  # those immunizations carry no provider id

_DAILY_CHANGE_RATE = 0.005
_CHANGE_REASONS = ("plan", "address", "move", "health")
_CHANGE_REASON_SHARES = (0.35, 0.30, 0.10, 0.25)
_MUTABLE_COLUMNS = ("plan_code", "street_address", "city", "zip_code", "geographic_region", "bmi", "smoker")

_MAX_CLAIM_LAG_DAYS = 30
_MAX_FILL_LAG_DAYS = 14
_MAX_IMMUNIZATION_LAG_DAYS = 10


class _Stream(IntEnum):
    """Independent random streams; a new feed gets a new number so existing outputs stay unchanged."""

    ROSTER = 1
    PROVIDERS = 2
    CHANGES = 3
    MEDICAL = 4
    PHARMACY = 5
    IMMUNIZATIONS = 6
    BAD_ROWS = 7
    RISK_SCORES = 8


def _templates(rows: tuple[tuple, ...], columns: tuple[str, ...]) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows), columns=list(columns))
    frame["condition_index"] = [_CONDITION_NAMES.index(c) if c else -1 for c in frame["condition"]]
    return frame


_MEDICAL_TEMPLATE_TABLE = _templates(_MEDICAL_TEMPLATES, _MEDICAL_TEMPLATE_COLUMNS)
_DRUG_TABLE = _templates(_DRUGS, _DRUG_COLUMNS)
_VACCINE_TABLE = _templates(_VACCINES, _VACCINE_COLUMNS)


# --------------------------------------------------------------------------- small helpers


def _rng(config: SyntheticConfig, on: date, stream: _Stream, *extra: int) -> np.random.Generator:
    return np.random.default_rng([config.seed, on.toordinal(), int(stream), *extra])


def _day_array(values: pd.Series) -> np.ndarray:
    return values.to_numpy().astype("datetime64[D]")


def _iso(days: np.ndarray) -> np.ndarray:
    return np.datetime_as_string(days, unit="D").astype(object)


def _age_years(birth: np.ndarray, on: np.ndarray | np.datetime64) -> np.ndarray:
    """Whole years between birth and `on` (calendar exact, birthdays included)."""

    def year_and_month_day(days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        months = days.astype("datetime64[M]")
        month_day = (months.astype(int) % 12 + 1) * 100 + (days - months).astype(int) + 1
        return days.astype("datetime64[Y]").astype(int), month_day

    birth_year, birth_month_day = year_and_month_day(np.asarray(birth, dtype="datetime64[D]"))
    on_year, on_month_day = year_and_month_day(np.asarray(on, dtype="datetime64[D]"))
    return on_year - birth_year - (on_month_day < birth_month_day)


def _primary_care(ages: np.ndarray) -> np.ndarray:
    return np.where(ages < 18, "pediatrics", "family_medicine").astype(object)


def _age_groups(ages: np.ndarray) -> np.ndarray:
    return np.array(AGE_GROUPS, dtype=object)[np.searchsorted(_AGE_GROUP_STARTS, ages, side="right")]


def _lags(rng: np.random.Generator, n: int, max_days: int, mean_days: float) -> np.ndarray:
    """Days between service and receipt: mostly short, capped at max_days."""
    offsets = np.arange(max_days + 1)
    weights = np.exp(-offsets / mean_days)
    return rng.choice(offsets, size=n, p=weights / weights.sum()).astype("timedelta64[D]")


def _choose_templates(
    rng: np.random.Generator,
    templates: pd.DataFrame,
    ages: np.ndarray,
    has_condition: np.ndarray,
    allowed: np.ndarray | None = None,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Row of `templates` for each person, drawn by weight among the templates that fit them."""
    condition_index = templates["condition_index"].to_numpy()
    fits = (ages[:, None] >= templates["min_age"].to_numpy()) & (ages[:, None] <= templates["max_age"].to_numpy())
    fits &= (condition_index < 0) | has_condition[:, condition_index]
    if allowed is not None:
        fits &= allowed
    weighted = fits * (templates["weight"].to_numpy() if weights is None else weights)
    if (weighted.sum(axis=1) <= 0).any():
        raise ValueError("a person fits no template; the reference tables must cover every age")
    return _weighted_choice(rng, weighted)


def _weighted_choice(rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
    """Column index per row of `weights`, drawn with probability proportional to that row's weights."""
    cumulative = weights.cumsum(axis=1)
    draw = rng.random(len(weights)) * (cumulative[:, -1] if len(weights) else 0.0)
    return (cumulative <= draw[:, None]).sum(axis=1)


def _fees(procedures: np.ndarray) -> np.ndarray:
    return pd.Series(procedures, dtype=object).map(_FEES).to_numpy(dtype=float)


def _record_ids(prefix: str, on: date, count: int) -> list[str]:
    # The day ordinal keeps ids unique across days without any shared counter.
    return [f"{prefix}{on.toordinal()}{number:07d}" for number in range(1, count + 1)]


# --------------------------------------------------------------------------- members


def _draw_addresses(rng: np.random.Generator, regions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Street address, city and zip code in each member's region (no commas, so no CSV quoting)."""
    n = len(regions)
    region_index = np.array([REGIONS.index(r) for r in regions], dtype=int)
    city_pick = rng.integers(0, len(_CITIES[0]), n)
    house = rng.integers(10, 9990, n)
    street = rng.choice(_STREET_NAMES, n)
    suffix = rng.choice(_STREET_SUFFIXES, n)
    zip_tail = rng.integers(0, 100, n)
    cities = [_CITIES[r][c] for r, c in zip(region_index, city_pick, strict=True)]
    street_address = np.array([f"{h} {s} {x}" for h, s, x in zip(house, street, suffix, strict=True)], dtype=object)
    city = np.array([name for name, _ in cities], dtype=object)
    zip_code = np.array(
        [f"{prefix}{tail:02d}" for (_, prefix), tail in zip(cities, zip_tail, strict=True)], dtype=object
    )
    return street_address, city, zip_code


def _draw_plans(rng: np.random.Generator, ages: np.ndarray) -> np.ndarray:
    """Plan codes consistent with age: CHIP for children, ABD/LTC mostly for older members."""
    shares = np.array(
        [[_PLAN_SHARES_BY_AGE_GROUP[group].get(plan, 0.0) for plan in PLAN_CODES] for group in AGE_GROUPS]
    )
    group_index = np.searchsorted(_AGE_GROUP_STARTS, ages, side="right")
    return np.array(PLAN_CODES, dtype=object)[_weighted_choice(rng, shares[group_index])]


def _draw_bmi(rng: np.random.Generator, ages: np.ndarray) -> np.ndarray:
    adult = rng.normal(29.0, 6.0, len(ages))
    child = rng.normal(16.0 + 0.3 * ages, 3.0)
    return np.round(np.where(ages >= 18, np.clip(adult, 12.0, 70.0), np.clip(child, 12.0, 40.0)), 1)


def _draw_smoker(rng: np.random.Generator, ages: np.ndarray) -> np.ndarray:
    share = np.select([ages >= 18, ages >= 13], [0.28, 0.04], 0.0)
    return np.where(rng.random(len(ages)) < share, "Y", "N").astype(object)


@functools.lru_cache(maxsize=8)
def _roster(config: SyntheticConfig) -> pd.DataFrame:
    rng = _rng(config, config.roster_date, _Stream.ROSTER)
    n = config.num_members
    roster_day = np.datetime64(config.roster_date, "D")

    band = rng.choice(len(_AGE_MIX), size=n, p=[share for *_, share in _AGE_MIX])
    youngest = np.array([low for low, _, _ in _AGE_MIX])[band]
    span = np.array([high - low + 1 for low, high, _ in _AGE_MIX])[band]
    drawn_age = youngest + np.floor(rng.random(n) * span).astype(int)
    days_old = (drawn_age * 365.25 + rng.uniform(1, 365, n)).astype(int)
    birth = roster_day - days_old.astype("timedelta64[D]")
    age = _age_years(birth, roster_day)

    gender = rng.choice(GENDERS, size=n, p=_GENDER_SHARES)
    female_name = rng.choice(_FEMALE_NAMES, n)
    male_name = rng.choice(_MALE_NAMES, n)
    # members of unknown gender get a name from either list
    use_female_name = (gender == "F") | ((gender == "U") & (rng.random(n) < 0.5))
    region = rng.choice(REGIONS, size=n, p=_REGION_SHARES).astype(object)
    street_address, city, zip_code = _draw_addresses(rng, region)
    bmi = _draw_bmi(rng, age)
    smoker = _draw_smoker(rng, age)
    is_smoker = smoker == "Y"

    conditions = {}
    for name, _, intercept, per_decade, per_bmi, if_smoker in _CONDITIONS:
        log_odds = intercept + per_decade * (age - 45) / 10 + per_bmi * (bmi - 29) + if_smoker * is_smoker
        conditions[f"has_{name}"] = rng.random(n) < 1 / (1 + np.exp(-log_odds))
    chronic_count = np.sum(list(conditions.values()), axis=0)
    log_risk = 0.015 * age + 0.3 * chronic_count + 0.02 * (bmi - 27) + 0.2 * is_smoker + rng.normal(0, 0.25, n)
    latent_risk = np.exp(log_risk)

    on_roster = rng.random(n) < _ON_ROSTER_SHARE
    enrolled_before = rng.integers(0, 5 * 365, n).astype("timedelta64[D]")
    enrols_later = rng.integers(1, 366, n).astype("timedelta64[D]")
    enrol = np.where(on_roster, np.maximum(roster_day - enrolled_before, birth), roster_day + enrols_later)
    term = roster_day + rng.integers(1, 366, n).astype("timedelta64[D]")
    term = np.where((rng.random(n) < _TERMINATED_SHARE) & (term > enrol), term, np.datetime64("NaT"))

    ids = np.sort(rng.choice(9 * 10**8, size=n, replace=False)) + 10**8
    return pd.DataFrame(
        {
            "member_id": [f"MCD{number:09d}" for number in ids],
            "first_name": np.where(use_female_name, female_name, male_name).astype(object),
            "last_name": rng.choice(_LAST_NAMES, n).astype(object),
            "date_of_birth": birth,
            "gender": gender.astype(object),
            "street_address": street_address,
            "city": city,
            "zip_code": zip_code,
            "geographic_region": region,
            "plan_code": _draw_plans(rng, age),
            "bmi": bmi,
            "smoker": smoker,
            "enrol_date": enrol,
            "term_date": term,
            "age_at_roster": age,
            "age_group": _age_groups(age),
            **conditions,
            "chronic_count": chronic_count,
            # normalised so the average member has risk 1 whatever the population size
            "latent_risk": latent_risk / latent_risk.mean(),
        }
    )


def member_roster(config: SyntheticConfig) -> pd.DataFrame:
    """The whole member population, one row per member, deterministic in config.

    Columns: the PHI (member_id, first_name, last_name, date_of_birth, street_address,
    city, zip_code), gender, geographic_region, plan_code, bmi, smoker as of the roster
    date, enrol_date, term_date (NaT when the member stays), age_at_roster, age_group,
    one boolean `has_<condition>` per chronic condition (diabetes E11.9, hypertension I10,
    asthma J45.909, copd J44.9, chf I50.9, ckd N18.3, depression F32.9), chronic_count and
    latent_risk.

    Latent risk is fixed per member:
        latent_risk = exp(0.015*age + 0.3*chronic_count + 0.02*(bmi - 27) + 0.2*smoker + e),
        e ~ N(0, 0.25^2), divided by its population mean,
    with age, bmi and smoking taken at the roster date; chronic conditions themselves are
    likelier with age, bmi and smoking. It drives utilisation and cost smoothly:
      - each legitimate medical claim picks its member with probability proportional to
        latent_risk among members active that day, so a member's expected claims per day are
        claims_per_day * latent_risk / (sum of latent_risk over active members);
      - its amount is the procedure fee times latent_risk**0.3 times lognormal noise;
      - pharmacy fills pick members proportionally to latent_risk * (1 + chronic_count),
        and the chronic conditions decide which diagnoses and drugs appear.
    Later CHANGE records (bmi, smoking) do not move it.
    """
    return _roster(config).copy()


def _apply_changes(
    config: SyntheticConfig,
    on: date,
    state: dict[str, np.ndarray],
    birth: np.ndarray,
    enrol: np.ndarray,
    term: np.ndarray,
) -> np.ndarray:
    """Applies one day's CHANGE events to the mutable attributes in `state`; returns the changed members."""
    rng = _rng(config, on, _Stream.CHANGES)
    today = np.datetime64(on, "D")
    # neither on the day of enrolment (the ADD says it all) nor on the day coverage ends
    covered = (enrol < today) & (np.isnat(term) | (term > today))
    changed = np.flatnonzero(covered & (rng.random(len(enrol)) < _DAILY_CHANGE_RATE))
    reasons = rng.choice(_CHANGE_REASONS, size=len(changed), p=_CHANGE_REASON_SHARES)

    replanned = changed[reasons == "plan"]
    state["plan_code"][replanned] = _draw_plans(rng, _age_years(birth[replanned], today))

    movers = changed[reasons == "move"]
    region_index = np.array([REGIONS.index(r) for r in state["geographic_region"][movers]], dtype=int)
    new_region_index = (region_index + rng.integers(1, len(REGIONS), len(movers))) % len(REGIONS)
    state["geographic_region"][movers] = np.array(REGIONS, dtype=object)[new_region_index]
    relocated = changed[np.isin(reasons, ("address", "move"))]
    street_address, city, zip_code = _draw_addresses(rng, state["geographic_region"][relocated])
    state["street_address"][relocated] = street_address
    state["city"][relocated] = city
    state["zip_code"][relocated] = zip_code

    rescreened = changed[reasons == "health"]
    new_bmi = state["bmi"][rescreened] + rng.normal(0.0, 1.5, len(rescreened))
    state["bmi"][rescreened] = np.round(np.clip(new_bmi, 12.0, 70.0), 1)
    state["smoker"][rescreened] = _draw_smoker(rng, _age_years(birth[rescreened], today))
    return changed


def _members_on(
    config: SyntheticConfig, on: date, saved: MemberStateCache | None = None
) -> tuple[pd.DataFrame, np.ndarray]:
    """The roster with mutable attributes as of `on` (that day's changes included) and who changed on `on`.

    Replays every day's changes since the roster date, or since the newest earlier day in `saved`: each day
    stays a pure function of (config, day), and a new day after a long history replays one day, not all.
    """
    roster = _roster(config)
    birth, enrol, term = (_day_array(roster[c]) for c in ("date_of_birth", "enrol_date", "term_date"))
    resumed = saved.newest_before(on) if saved is not None else None
    start, state = resumed or (
        config.roster_date,
        {column: roster[column].to_numpy(copy=True) for column in _MUTABLE_COLUMNS},
    )
    changed = np.empty(0, dtype=int)
    for offset in range(1, (on - start).days + 1):
        changed = _apply_changes(config, start + timedelta(days=offset), state, birth, enrol, term)
    if saved is not None:
        saved.save(on, state)
    return roster.assign(**state), changed


class MemberStateCache:
    """The members' mutable attributes after the newest day generated, kept in a hidden folder of the landing
    zone per config (one file): a cache of the replay in `_members_on`, never a source of its own."""

    FOLDER = ".synthetic_member_state"

    def __init__(self, landing_root: str | Path, config: SyntheticConfig):
        fingerprint = hashlib.sha256(repr(config).encode()).hexdigest()[:16]
        self.folder = Path(landing_root) / self.FOLDER / fingerprint

    def _stored_day(self) -> tuple[date, Path] | None:
        files = sorted(self.folder.glob("????-??-??.parquet")) if self.folder.is_dir() else []
        return (date.fromisoformat(files[-1].stem), files[-1]) if files else None

    def newest_before(self, on: date) -> tuple[date, dict[str, np.ndarray]] | None:
        """The stored day and its state when it is before `on` (None otherwise: replay from the roster)."""
        stored = self._stored_day()
        if stored is None or stored[0] >= on:
            return None
        frame = pd.read_parquet(stored[1])
        return stored[0], {c: frame[c].to_numpy(dtype=frame[c].dtype, copy=True) for c in _MUTABLE_COLUMNS}

    def save(self, on: date, state: dict[str, np.ndarray]) -> None:
        """Keeps `on`'s state when it is the newest day generated (it replaces the older file)."""
        stored = self._stored_day()
        if stored is not None and stored[0] >= on:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.folder, prefix=".state.", suffix=".tmp")
        os.close(handle)
        pd.DataFrame(state).to_parquet(temporary, index=False)
        os.replace(temporary, self.folder / f"{on.isoformat()}.parquet")
        if stored is not None:
            stored[1].unlink(missing_ok=True)


@functools.lru_cache(maxsize=8)
def _providers(config: SyntheticConfig) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """Provider roster and the phantom provider ids (NPI-like ids that belong to no real provider)."""
    rng = _rng(config, config.roster_date, _Stream.PROVIDERS)
    n = config.num_providers
    ids = [f"{number}" for number in 10**9 + rng.choice(10**9, size=n + _PHANTOM_PROVIDER_COUNT, replace=False)]
    specialty = rng.choice(SPECIALTIES, size=n, p=_PROVIDER_SPECIALTY_SHARES).astype(object)
    region = rng.choice(REGIONS, size=n, p=_REGION_SHARES).astype(object)
    # the first providers cover every (region, specialty) pair so local care always exists
    covering = np.arange(min(n, len(REGIONS) * len(SPECIALTIES)))
    specialty[covering] = np.array(SPECIALTIES, dtype=object)[covering % len(SPECIALTIES)]
    region[covering] = np.array(REGIONS, dtype=object)[covering // len(SPECIALTIES) % len(REGIONS)]
    providers = pd.DataFrame(
        {
            "provider_id": ids[:n],
            "specialty": specialty,
            "region": region,
            "experience_years": rng.integers(2, 41, n),
        }
    )
    return providers, tuple(ids[n:])


# --------------------------------------------------------------------------- one received day


@dataclass
class _Day:
    """What every feed generator needs about one received day."""

    config: SyntheticConfig
    on: date
    members: pd.DataFrame  # roster with mutable attributes as of `on`
    changed: np.ndarray  # members with a CHANGE record on `on`
    today: np.datetime64 = field(init=False)
    birth: np.ndarray = field(init=False)
    enrol: np.ndarray = field(init=False)
    term: np.ndarray = field(init=False)
    active: np.ndarray = field(init=False)  # members covered on `on`
    conditions: np.ndarray = field(init=False)  # members x chronic conditions
    providers: pd.DataFrame = field(init=False)
    phantom_provider_ids: tuple[str, ...] = field(init=False)
    drift: float = field(init=False)

    def __post_init__(self) -> None:
        self.today = np.datetime64(self.on, "D")
        self.birth, self.enrol, self.term = (
            _day_array(self.members[c]) for c in ("date_of_birth", "enrol_date", "term_date")
        )
        covered = (self.enrol <= self.today) & (np.isnat(self.term) | (self.term >= self.today))
        self.active = np.flatnonzero(covered)
        self.conditions = self.members[list(_CONDITION_COLUMNS)].to_numpy(dtype=bool)
        self.providers, self.phantom_provider_ids = _providers(self.config)
        drifting = self.config.drift_start is not None and self.on >= self.config.drift_start
        self.drift = self.config.drift_strength if drifting else 0.0

    def column(self, name: str, members: np.ndarray) -> np.ndarray:
        return self.members[name].to_numpy()[members]

    def volume(self, rng: np.random.Generator, mean: int) -> int:
        """Poisson number of records for the day; none while nobody is covered."""
        return int(rng.poisson(mean)) if len(self.active) else 0

    def sample_members(self, rng: np.random.Generator, n: int, weights: np.ndarray) -> np.ndarray:
        """Active members drawn with probability proportional to `weights` (aligned with `active`)."""
        if n == 0:
            return np.empty(0, dtype=int)
        return rng.choice(self.active, size=n, p=weights / weights.sum())

    def pick_providers(self, rng: np.random.Generator, specialty: np.ndarray, region: np.ndarray) -> np.ndarray:
        """Provider row per visit: the requested specialty, mostly in the member's own region."""
        chosen = np.zeros(len(specialty), dtype=int)
        anywhere = rng.random(len(specialty)) < _OUT_OF_REGION_VISIT_SHARE
        provider_specialty = self.providers["specialty"].to_numpy()
        provider_region = self.providers["region"].to_numpy()
        for wanted in np.unique(specialty):
            qualified = np.flatnonzero(provider_specialty == wanted)
            for home in REGIONS:
                local = qualified[provider_region[qualified] == home]
                pool = local if len(local) else qualified
                visits = (specialty == wanted) & (region == home) & ~anywhere
                chosen[visits] = pool[rng.integers(0, len(pool), int(visits.sum()))]
            visits = (specialty == wanted) & anywhere
            chosen[visits] = qualified[rng.integers(0, len(qualified), int(visits.sum()))]
        return chosen


# --------------------------------------------------------------------------- eligibility


def _eligibility_records(day: _Day) -> pd.DataFrame:
    """834-style records: the whole roster on the roster date, then daily ADD/CHANGE/TERM.

    ADD starts coverage at the enrolment date. CHANGE carries the full member record after the
    change and starts on the day of the change. TERM carries the full record, keeps the start of
    the coverage it ends and ends on the day it is received.
    """
    if day.on == day.config.roster_date:
        added = np.flatnonzero(day.enrol <= day.today)
    else:
        added = np.flatnonzero(day.enrol == day.today)
    terminated = np.flatnonzero(day.term == day.today)
    members = np.concatenate([added, day.changed, terminated])
    maintenance = ["ADD"] * len(added) + ["CHANGE"] * len(day.changed) + ["TERM"] * len(terminated)
    start = np.concatenate([day.enrol[added], np.full(len(day.changed), day.today), day.enrol[terminated]])
    end = [None] * (len(added) + len(day.changed)) + [day.on.isoformat()] * len(terminated)

    records = day.members.iloc[members].reset_index(drop=True)
    records["date_of_birth"] = _iso(day.birth[members])
    records["maintenance_type"] = maintenance
    records["eligibility_start_date"] = _iso(start)
    records["eligibility_end_date"] = pd.Series(end, dtype=object)
    # ADD < CHANGE < TERM alphabetically, which is also the order they take effect within a day
    return records.sort_values(["member_id", "maintenance_type"], ignore_index=True)


# --------------------------------------------------------------------------- medical claims


def _claim_type_shares(drift: float) -> dict[str, float]:
    mix = min(drift, 1.0)
    return {t: (1 - mix) * _CLAIM_TYPE_SHARES[t] + mix * _DRIFTED_CLAIM_TYPE_SHARES[t] for t in _CLAIM_TYPE_SHARES}


def _resolve_procedures(
    rng: np.random.Generator, placeholders: np.ndarray, diagnoses: np.ndarray, ages: np.ndarray
) -> np.ndarray:
    """Turns E/M and preventive placeholders into CPT codes; literal codes pass through."""
    procedures = placeholders.astype(object)
    severity = pd.Series(diagnoses, dtype=object).map(_SEVERITY).to_numpy()
    for family, levels in _EM_LEVELS.items():
        for level, codes in levels.items():
            visits = (placeholders == family) & (severity == level)
            procedures[visits] = rng.choice(codes, size=int(visits.sum()))
    preventive = placeholders == "WELL"
    by_age = np.array(_PREVENTIVE_CODES, dtype=object)[np.searchsorted(_PREVENTIVE_AGE_STARTS, ages, side="right")]
    procedures[preventive] = by_age[preventive]
    return procedures


def _unusual_procedures(rng: np.random.Generator, procedures: np.ndarray) -> np.ndarray:
    """A procedure from the unusual list that differs from the current one."""
    pick = rng.integers(0, len(_UNUSUAL_PROCEDURES), len(procedures))
    unusual = np.array(_UNUSUAL_PROCEDURES, dtype=object)
    same = unusual[pick] == procedures
    return unusual[np.where(same, (pick + 1) % len(unusual), pick)]


def _in_bias_group(day: _Day, members: np.ndarray, ages: np.ndarray) -> np.ndarray:
    config = day.config
    if config.bias_group is None or config.bias_strength == 0.0:
        return np.zeros(len(members), dtype=bool)
    attribute, value = config.bias_group
    values = _age_groups(ages) if attribute == "age_group" else day.column(attribute, members)
    return values == value


def _assign_providers(claims: pd.DataFrame, day: _Day, rng: np.random.Generator, specialty: np.ndarray) -> None:
    chosen = day.pick_providers(rng, specialty, claims["_region"].to_numpy())
    claims["provider_id"] = day.providers["provider_id"].to_numpy()[chosen]
    claims["provider_specialty"] = specialty
    claims["provider_experience_years"] = day.providers["experience_years"].to_numpy()[chosen]


def _set_amounts(claims: pd.DataFrame, rng: np.random.Generator, amounts: np.ndarray) -> None:
    """Billed amounts rounded to cents, and the paid share of each (60-90%, never above the bill)."""
    billed = np.round(np.clip(amounts, 1.0, MEDICAL_CLAIMS.column("claim_amount").max_value), 2)
    claims["claim_amount"] = billed
    claims["paid_amount"] = np.floor(billed * rng.uniform(0.6, 0.9, len(billed)) * 100) / 100


def _label(claims: pd.DataFrame, pattern: str) -> pd.DataFrame:
    claims["_fraud_pattern"] = pattern
    claims["_protected"] = True
    return claims


def _encounters(day: _Day, rng: np.random.Generator, n: int, type_shares: dict[str, float]) -> pd.DataFrame:
    """n legitimate-looking claims: member, dates, diagnosis, procedure, provider and amounts fit together."""
    config = day.config
    risk = day.members["latent_risk"].to_numpy()
    age_today = _age_years(day.birth[day.active], day.today)
    # drift: older members claim more
    weights = risk[day.active] * (1 + day.drift * np.maximum(age_today - 40, 0) / 25)
    members = day.sample_members(rng, n, weights)
    shares = np.array(list(type_shares.values()))
    claim_type = rng.choice(list(type_shares), size=n, p=shares / shares.sum()).astype(object)

    # Service ends on or before the receipt day and never before enrolment; a stay ends on its last day.
    service_end = np.maximum(day.today - _lags(rng, n, _MAX_CLAIM_LAG_DAYS, 7.0), day.enrol[members])
    stay_days = np.where(claim_type == "inpatient", rng.integers(1, 11, n), 0)
    stay_days = np.minimum(stay_days, (service_end - day.enrol[members]).astype(int))
    # a member enrolled today cannot have had a stay that is already over: treat it as an ER visit
    claim_type[(claim_type == "inpatient") & (stay_days < 1)] = "emergency"
    service_start = service_end - stay_days.astype("timedelta64[D]")
    ages = _age_years(day.birth[members], service_start)

    table = _MEDICAL_TEMPLATE_TABLE
    same_type = claim_type[:, None] == table["claim_type"].to_numpy()[None, :]
    chosen = table.iloc[_choose_templates(rng, table, ages, day.conditions[members], allowed=same_type)]
    diagnosis = chosen["diagnosis"].to_numpy().astype(object)
    procedure = _resolve_procedures(rng, chosen["procedure"].to_numpy(), diagnosis, ages)

    # bias: the group's legitimate claims look odd (rarer procedures, noisier amounts) without being fraud
    in_group = _in_bias_group(day, members, ages)
    odd = in_group & (rng.random(n) < 0.3 * config.bias_strength)
    procedure = np.where(odd, _unusual_procedures(rng, procedure), procedure)
    sigma = 0.25 + config.bias_strength * in_group
    noise = rng.lognormal(-(sigma**2) / 2, sigma)  # mean 1: only the spread changes
    amounts = _fees(procedure) * np.maximum(stay_days, 1) * risk[members] ** 0.3 * noise * (1 + day.drift)

    claims = pd.DataFrame(
        {
            "member_id": day.column("member_id", members),
            "patient_dob": _iso(day.birth[members]),
            "claim_type": claim_type,
            "diagnosis_code": diagnosis,
            "procedure_code": procedure,
            "service_start_date": _iso(service_start),
            "service_end_date": _iso(service_end),
            "_region": day.column("geographic_region", members),
            "_age": ages,
            "_fraud_pattern": None,
            "_protected": False,
        }
    )
    _assign_providers(claims, day, rng, chosen["specialty"].to_numpy().astype(object))
    _set_amounts(claims, rng, amounts)
    return claims


def _upcoded_claims(day: _Day, rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Top E/M level billed for a minor diagnosis, at 2.5-4x the usual fee."""
    claims = _encounters(day, rng, n, {"professional": 0.7, "emergency": 0.3})
    emergency = claims["claim_type"].to_numpy() == "emergency"
    adult = claims["_age"].to_numpy() >= 18
    diagnosis = rng.choice(_MINOR_DIAGNOSES, size=n).astype(object)
    claims["diagnosis_code"] = np.where(~adult & (diagnosis == "Z00.00"), "Z00.129", diagnosis)
    claims["procedure_code"] = np.where(emergency, "99285", "99215")
    specialty = np.where(emergency, "emergency_medicine", _primary_care(claims["_age"].to_numpy())).astype(object)
    _assign_providers(claims, day, rng, specialty)
    usual_fee = np.where(emergency, _FEES["99282"], _FEES["99213"])
    _set_amounts(claims, rng, usual_fee * rng.uniform(2.5, 4.0, n) * (1 + day.drift))
    return _label(claims, "upcoding")


def _phantom_provider_claims(day: _Day, rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Claims from providers absent from the roster, barely experienced, in a specialty that does not fit."""
    claims = _encounters(day, rng, n, {"professional": 0.6, "outpatient": 0.4})
    claims["provider_id"] = rng.choice(day.phantom_provider_ids, size=n).astype(object)
    claims["provider_experience_years"] = rng.integers(0, 2, n)
    specialty = np.empty(n, dtype=object)
    diagnosis = claims["diagnosis_code"].to_numpy()
    for code in np.unique(diagnosis):
        unfitting = [s for s in SPECIALTIES if s not in _DIAGNOSIS_SPECIALTIES[code]]
        rows = diagnosis == code
        specialty[rows] = rng.choice(unfitting, size=int(rows.sum()))
    claims["provider_specialty"] = specialty
    _set_amounts(claims, rng, claims["claim_amount"].to_numpy() * rng.uniform(3.0, 6.0, n))
    return _label(claims, "phantom_provider")


def _unbundled_claims(day: _Day, rng: np.random.Generator, row_budget: int) -> pd.DataFrame:
    """Lab panels split into 4..8 component claims for one member, provider and service date."""
    encounters = max(1, round(row_budget / 6)) if row_budget else 0
    visits = _encounters(day, rng, encounters, {"outpatient": 1.0})
    visits["diagnosis_code"] = rng.choice(_UNBUNDLING_DIAGNOSES, size=encounters).astype(object)
    ordering = np.where(visits["_age"].to_numpy() < 18, "pediatrics", "internal_medicine").astype(object)
    _assign_providers(visits, day, rng, ordering)
    components = rng.integers(4, 9, encounters)
    claims = visits.iloc[np.repeat(np.arange(encounters), components)].reset_index(drop=True)
    # distinct components per encounter: a random ordering of the panel, first k taken
    panel_order = np.argsort(rng.random((encounters, len(LAB_COMPONENTS))), axis=1)
    position = np.arange(len(claims)) - np.repeat(np.cumsum(components) - components, components)
    codes = np.array(LAB_COMPONENTS, dtype=object)[panel_order[np.repeat(np.arange(encounters), components), position]]
    claims["procedure_code"] = codes
    _set_amounts(claims, rng, _fees(codes) * rng.uniform(1.5, 3.0, len(claims)) * (1 + day.drift))
    return _label(claims, "unbundling")


def _medical_claims(day: _Day) -> pd.DataFrame:
    config = day.config
    rng = _rng(config, day.on, _Stream.MEDICAL)
    legit = _encounters(day, rng, day.volume(rng, config.claims_per_day), _claim_type_shares(day.drift))

    fraud_rows = round(len(legit) * config.fraud_rate / (1 - config.fraud_rate))
    budget = dict(
        zip(FRAUD_PATTERNS, rng.multinomial(fraud_rows, [_FRAUD_SHARES[p] for p in FRAUD_PATTERNS]), strict=True)
    )
    originals = rng.choice(len(legit), size=min(budget["duplicate_billing"], len(legit)), replace=False)
    # an original must stay good, or its copy would no longer be a duplicate of anything
    legit.loc[originals, "_protected"] = True
    parts = [
        legit,
        _upcoded_claims(day, rng, budget["upcoding"]),
        _label(legit.iloc[originals].copy(), "duplicate_billing"),
        _phantom_provider_claims(day, rng, budget["phantom_provider"]),
        _unbundled_claims(day, rng, budget["unbundling"]),
    ]
    claims = pd.concat(parts, ignore_index=True)
    order = rng.permutation(len(claims))
    # a duplicate is a resubmission: it is received (and numbered) after the claim it copies
    copies = len(legit) + len(parts[1]) + np.arange(len(originals))
    position = np.argsort(order)
    early = position[copies] < position[originals]
    order[position[copies[early]]], order[position[originals[early]]] = originals[early], copies[early]
    claims = claims.iloc[order].reset_index(drop=True)
    # ids are given after shuffling, so a duplicate_billing copy gets its own new claim id
    claims["claim_id"] = _record_ids("CLM", day.on, len(claims))
    return claims


# --------------------------------------------------------------------------- pharmacy and immunizations


def _pharmacy_claims(day: _Day) -> pd.DataFrame:
    config = day.config
    rng = _rng(config, day.on, _Stream.PHARMACY)
    n = day.volume(rng, config.rx_claims_per_day)
    risk = day.members["latent_risk"].to_numpy()
    chronic = day.members["chronic_count"].to_numpy()
    members = day.sample_members(rng, n, (risk * (1 + chronic))[day.active])
    fill = np.maximum(day.today - _lags(rng, n, _MAX_FILL_LAG_DAYS, 4.0), day.enrol[members])
    ages = _age_years(day.birth[members], fill)
    drug = _DRUG_TABLE.iloc[_choose_templates(rng, _DRUG_TABLE, ages, day.conditions[members])]

    maintenance = drug["maintenance"].to_numpy(dtype=bool)
    days_supply = np.where(maintenance, rng.choice([30, 90], n, p=[0.8, 0.2]), rng.choice([5, 7, 10, 14], n))
    quantity = np.round(days_supply * drug["units_per_day"].to_numpy(), 1)
    price = drug["unit_price"].to_numpy() * quantity * rng.lognormal(0.0, 0.1, n) + _DISPENSING_FEE
    prescriber = day.pick_providers(rng, _primary_care(ages), day.column("geographic_region", members))
    pharmacy_count = max(10, config.num_providers // 3)
    return pd.DataFrame(
        {
            "rx_claim_id": _record_ids("RX", day.on, n),
            "member_id": day.column("member_id", members),
            "fill_date": _iso(fill),
            "ndc_code": drug["ndc_code"].to_numpy(),
            "drug_class": drug["drug_class"].to_numpy(),
            "days_supply": days_supply.astype(int),
            "quantity": quantity,
            "prescriber_id": day.providers["provider_id"].to_numpy()[prescriber],
            "pharmacy_id": [f"PHM{number:05d}" for number in rng.integers(1, pharmacy_count + 1, n)],
            "rx_amount": np.round(price, 2),
        }
    )


def _immunization_records(day: _Day) -> pd.DataFrame:
    config = day.config
    rng = _rng(config, day.on, _Stream.IMMUNIZATIONS)
    n = day.volume(rng, config.immunizations_per_day)
    members = day.sample_members(rng, n, np.ones(len(day.active)))
    given = _lags(rng, n, _MAX_IMMUNIZATION_LAG_DAYS, 3.0)
    administered = np.maximum(day.today - given, day.enrol[members])
    ages = _age_years(day.birth[members], administered)
    in_season = day.on.month in _FLU_SEASON_MONTHS
    weights = _VACCINE_TABLE["weight"].to_numpy() * np.where(
        _VACCINE_TABLE["vaccine_code"].to_numpy() == "FLU", 3.0 if in_season else 0.3, 1.0
    )
    vaccine = _VACCINE_TABLE.iloc[
        _choose_templates(rng, _VACCINE_TABLE, ages, day.conditions[members], weights=weights)
    ]
    clinic = day.pick_providers(rng, _primary_care(ages), day.column("geographic_region", members))
    provider_id = day.providers["provider_id"].to_numpy()[clinic].astype(object)
    provider_id[rng.random(n) < _PHARMACY_ADMINISTERED_SHARE] = None
    return pd.DataFrame(
        {
            "immunization_id": _record_ids("IMM", day.on, n),
            "member_id": day.column("member_id", members),
            "vaccine_code": vaccine["vaccine_code"].to_numpy(),
            "administered_date": _iso(administered),
            "provider_id": provider_id,
        }
    )


# --------------------------------------------------------------------------- rendering and bad records


def _render(source: Source, record: dict[str, Any]) -> str:
    """One record as one physical line (no field ever holds a newline or a comma)."""
    if source.file_format == "jsonl":
        return json.dumps(record, separators=(",", ":"))
    return ",".join("" if value is None else str(value) for value in record.values())


def _bad_kinds(source: Source) -> list[str]:
    """The kinds of bad record a source's rules make possible."""
    columns = source.columns
    possible = {
        "malformed": True,
        "missing_key": bool(source.key),
        "wrong_type": any(c.dtype != STRING for c in columns),
        "out_of_range": any(c.min_value is not None for c in columns),
        "unknown_code": any(c.allowed is not None or c.pattern is not None for c in columns),
        "future_date": bool(source.not_after_receipt),
    }
    return [kind for kind in BAD_RECORD_KINDS if possible[kind]]


def _pick_column(rng: np.random.Generator, columns: list[Column]) -> Column:
    return columns[int(rng.integers(0, len(columns)))]


def _future_date_column(source: Source) -> str:
    """A receipt-bound date whose ordered partner is not receipt-bound too, so only one rule breaks."""
    pushes_receipt_bound = {earlier for earlier, later in source.ordered_dates if later in source.not_after_receipt}
    return next(name for name in source.not_after_receipt if name not in pushes_receipt_bound)


def _bad_line(source: Source, record: dict[str, Any], kind: str, on: date, rng: np.random.Generator) -> str:
    """The record broken in exactly one way of the given kind."""
    record = dict(record)
    present = [c for c in source.columns if record.get(c.name) is not None]
    if kind == "malformed":
        line = _render(source, record)
        if source.file_format == "jsonl":
            return line[: len(line) // 2]
        fields = line.split(",")
        variant = int(rng.integers(0, 3))
        if variant == 0:
            return ",".join(fields[:-1])
        if variant == 1:
            return ",".join([*fields, fields[-1]])
        # an unterminated quote in the second field: a line reader sees too few fields on this line only
        return ",".join([fields[0], '"' + fields[1], *fields[2:]])
    if kind == "missing_key":
        name = str(rng.choice(source.key))
        if source.file_format == "jsonl":
            del record[name]
        else:
            record[name] = None
    elif kind == "wrong_type":
        column = _pick_column(rng, [c for c in present if c.dtype != STRING])
        if column.dtype == DATE:
            bad_dates = (f"{on.year}-02-30", record[column.name].replace("-", ""))
            record[column.name] = bad_dates[int(rng.integers(0, 2))]
        else:
            record[column.name] = "N/A"
    elif kind == "out_of_range":
        column = _pick_column(rng, [c for c in present if c.min_value is not None])
        minimum = column.min_value
        assert minimum is not None  # only columns with a minimum were candidates
        value = record[column.name]
        if column.dtype == INT:
            record[column.name] = int(minimum) - 1
        elif minimum > 0:
            record[column.name] = minimum / 2
        else:
            record[column.name] = -max(abs(value), 1.0)
    elif kind == "unknown_code":
        column = _pick_column(rng, [c for c in present if c.allowed is not None or c.pattern is not None])
        # every pattern starts with a digit or a letter followed by digits, so a leading X breaks it
        record[column.name] = "UNKNOWN" if column.allowed is not None else "X" + record[column.name]
    elif kind == "future_date":
        name = _future_date_column(source)
        future = (on + timedelta(days=int(rng.integers(1, 60)))).isoformat()
        record[name] = future
        for earlier, later in source.ordered_dates:
            if earlier == name and record[later] is not None:
                record[later] = max(record[later], future)  # keep the pair ordered: only one rule breaks
    else:
        raise ValueError(f"unknown bad record kind {kind!r}")
    return _render(source, record)


def _feed_lines(
    config: SyntheticConfig, day: date, source: Source, records: pd.DataFrame, protected: np.ndarray
) -> tuple[list[str], dict[str, int], int]:
    """The file's lines (header first for CSV), bad-record counts per kind and duplicate count.

    Bad records replace good ones (never protected ones); duplicates are exact copies of good
    lines inserted at random places.
    """
    names = source.column_names
    rows = [
        dict(zip(names, values, strict=True))
        for values in zip(*(records[name].tolist() for name in names), strict=True)
    ]
    lines = [_render(source, row) for row in rows]
    bad_counts = dict.fromkeys(BAD_RECORD_KINDS, 0)
    duplicates = 0
    if config.bad_record_rate > 0 and lines:
        rng = _rng(config, day, _Stream.BAD_ROWS, list(SOURCES).index(source.name))
        candidates = np.flatnonzero(~protected)
        bad = rng.choice(
            candidates, size=min(int(rng.binomial(len(lines), config.bad_record_rate)), len(candidates)), replace=False
        )
        for row, kind in zip(bad, rng.choice(_bad_kinds(source), size=len(bad)), strict=True):
            lines[row] = _bad_line(source, rows[row], str(kind), day, rng)
            bad_counts[str(kind)] += 1
        good = np.setdiff1d(np.arange(len(lines)), bad)
        duplicates = min(int(rng.binomial(len(lines), config.bad_record_rate / 5)), len(good))
        copies = rng.choice(good, size=duplicates, replace=False)
        places = np.concatenate([np.arange(len(lines)), rng.uniform(0, len(lines), duplicates)])
        with_copies = lines + [lines[i] for i in copies]
        lines = [with_copies[i] for i in np.argsort(places, kind="stable")]
    header = [",".join(names)] if source.file_format == "csv" else []
    return header + lines, bad_counts, duplicates


# --------------------------------------------------------------------------- public entry points


def generate_day(config: SyntheticConfig, day: date, saved: MemberStateCache | None = None) -> DayData:
    """All feeds received on `day`, in memory, exactly as they will be written (`saved` only makes it faster)."""
    if day < config.roster_date:
        raise ValueError(f"{day} is before the roster date {config.roster_date}: no feeds exist for it")
    members, changed = _members_on(config, day, saved)
    context = _Day(config, day, members, changed)
    claims = _medical_claims(context)
    records = {
        MEDICAL_CLAIMS.name: claims,
        PHARMACY_CLAIMS.name: _pharmacy_claims(context),
        MEMBER_ELIGIBILITY.name: _eligibility_records(context),
        IMMUNIZATIONS.name: _immunization_records(context),
    }
    lines: dict[str, list[str]] = {}
    bad_rows: dict[str, dict[str, int]] = {}
    duplicate_rows: dict[str, int] = {}
    for name, source in SOURCES.items():
        frame = records[name]
        protected = frame["_protected"].to_numpy(dtype=bool) if "_protected" in frame else np.zeros(len(frame), bool)
        lines[name], bad_rows[name], duplicate_rows[name] = _feed_lines(config, day, source, frame, protected)

    labelled = claims[claims["_fraud_pattern"].notna()].sort_values("claim_id")
    fraud_labels = list(zip(labelled["claim_id"], labelled["_fraud_pattern"], strict=True))
    manifest = DayManifest(
        day=day.isoformat(),
        files={name: landing_file_path(source, day) for name, source in SOURCES.items()},
        rows={name: len(lines[name]) - (1 if source.file_format == "csv" else 0) for name, source in SOURCES.items()},
        bad_rows=bad_rows,
        duplicate_rows=duplicate_rows,
        fraud={pattern: int((labelled["_fraud_pattern"] == pattern).sum()) for pattern in FRAUD_PATTERNS},
    )
    return DayData(day=day, lines=lines, fraud_labels=fraud_labels, manifest=manifest)


def _write_atomically(path: Path, text: str) -> None:
    """Readers see the old file or the new one, never a partial one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # a dot-prefixed temp file in the same folder: hidden from Spark listings, and os.replace stays atomic
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as file:
            file.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _file_text(lines: list[str]) -> str:
    return "".join(f"{line}\n" for line in lines)


def write_landing_day(config: SyntheticConfig, day: date, landing_root: str | Path) -> DayManifest:
    """Writes the day's feeds, fraud labels and manifest under landing_root; rewriting gives identical bytes."""
    root = Path(landing_root)
    data = generate_day(config, day, MemberStateCache(root, config))
    for name, path in data.manifest.files.items():
        _write_atomically(root / path, _file_text(data.lines[name]))
    _write_atomically(root / fraud_labels_file_path(day), _file_text(data.fraud_label_lines))
    _write_atomically(root / risk_scores_file_path(day), actuarial_risk_scores(config, day).to_csv(index=False))
    # the manifest goes last: once it exists, the whole day is in place
    manifest_text = json.dumps(data.manifest.to_dict(), indent=2, sort_keys=True) + "\n"
    _write_atomically(root / manifest_file_path(day), manifest_text)
    return data.manifest


# --------------------------------------------------------------------------- actuarial risk scores (labels)

RISK_SCORES_FOLDER = "member_risk_scores"
# The vendor's 0-100 score is a logistic map of the member's log latent risk.
RISK_SCORE_CENTER = 0.3  # log latent risk that maps to 50
RISK_SCORE_SCALE = 0.5
RISK_SCORE_NOISE = 5.0  # the vendor's own measurement error: uniform in +-5 points
HIGH_RISK_SCORE = 60.0  # the payer's care-management cut: about 13 % of members at default settings
# Expected annual cost (the payer's cost model, calibrated on the default volumes): a claim costs about
# $890 paid at average risk, and fills about $25 per unit of pharmacy weight latent_risk * (1 + chronic_count).
_PAID_PER_CLAIM = 890.0
_COST_PER_FILL_WEIGHT = 25.0
_BIAS_LOG_RISK_NOISE = 1.0  # extra N(0, (bias_strength * 1.0)^2) on the biased group's log risk


def risk_scores_file_path(day: date) -> str:
    return f"{RISK_SCORES_FOLDER}/{day.isoformat()}/member_risk_scores_{day:%Y%m%d}.csv"


def actuarial_risk_scores(config: SyntheticConfig, day: date) -> pd.DataFrame:
    """The payer's actuarial risk file as delivered on `day`: one row per member covered that day.

    This is the label feed of the member risk models (like an HCC-style score a vendor
    computes from a full year of coded history); it lands beside the claims and is read
    only by model training and evaluation, never by a feature table. Per member, fixed
    over days:

        risk_score = clip(100 / (1 + exp(-(ln(latent_risk) - 0.3) / 0.5)) + u, 0, 100),
                     u ~ Uniform(-5, 5)  (rounded to 0.1)
        high_risk  = risk_score >= 60
        expected_annual_cost = 365 * claims_per_day / num_members * 890 * latent_risk**1.3
                             + 365 * rx_claims_per_day / num_members * 25 * latent_risk * (1 + chronic_count)

    `latent_risk` is `member_roster`'s documented function of age, chronic conditions,
    BMI and smoking plus noise, so the score is learnable from demographics, risk
    factors, coded conditions and utilisation, none of which contain the score itself.
    The cost follows how claims are drawn: frequency proportional to latent_risk and
    amount to latent_risk**0.3.

    Bias knob: with `bias_group` set, the vendor's scores for members of that group
    (attributes as of the roster date) are computed on a log risk disturbed by
    N(0, bias_strength**2) noise, as if their coded history were incomplete, so the
    high-risk classifier is less accurate for that group than for others.
    """
    roster = _roster(config)
    today = np.datetime64(day, "D")
    enrol, term = _day_array(roster["enrol_date"]), _day_array(roster["term_date"])
    rng = _rng(config, config.roster_date, _Stream.RISK_SCORES)
    n = len(roster)
    log_risk = np.log(roster["latent_risk"].to_numpy())
    measurement = rng.uniform(-RISK_SCORE_NOISE, RISK_SCORE_NOISE, n)
    disturbance = rng.normal(0.0, _BIAS_LOG_RISK_NOISE, n)
    if config.bias_group is not None and config.bias_strength > 0.0:
        attribute, value = config.bias_group
        values = roster[attribute].to_numpy() if attribute in roster else np.full(n, None)
        log_risk = log_risk + np.where(values == value, config.bias_strength * disturbance, 0.0)
    score = 100.0 / (1.0 + np.exp(-(log_risk - RISK_SCORE_CENTER) / RISK_SCORE_SCALE)) + measurement
    score = np.round(np.clip(score, 0.0, 100.0), 1)
    latent = roster["latent_risk"].to_numpy()
    per_member = 365.0 / config.num_members
    cost = per_member * (
        config.claims_per_day * _PAID_PER_CLAIM * latent**1.3
        + config.rx_claims_per_day * _COST_PER_FILL_WEIGHT * latent * (1 + roster["chronic_count"].to_numpy())
    )
    covered = (enrol <= today) & (np.isnat(term) | (term >= today))
    return pd.DataFrame(
        {
            "member_id": roster["member_id"].to_numpy()[covered],
            "risk_score": score[covered],
            "high_risk": (score >= HIGH_RISK_SCORE)[covered],
            "expected_annual_cost": np.round(cost, 2)[covered],
        }
    )
