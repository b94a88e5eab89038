"""Contracts of the landing feeds: columns, types, rules and which fields are PHI.

One declaration per feed drives the synthetic generator, the bronze parser, the
silver casts and the privacy policy, so they cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

STRING = "string"
INT = "int"
DOUBLE = "double"
DATE = "date"
MONEY = "money"  # exact decimal amounts: sums and averages do not depend on row order


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str = STRING
    required: bool = False
    min_value: float | None = None
    max_value: float | None = None
    allowed: tuple[str, ...] | None = None
    pattern: str | None = None
    phi: bool = False
    description: str = ""


@dataclass(frozen=True)
class Source:
    name: str
    file_format: str  # "csv" or "jsonl"
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    description: str
    # date columns that may not lie after the day the file was received
    not_after_receipt: tuple[str, ...] = ()
    # (earlier, later) pairs of date columns that must be ordered
    ordered_dates: tuple[tuple[str, str], ...] = ()
    # (amount, ceiling) pairs of numeric columns: the amount may not exceed the ceiling on the same line
    not_above: tuple[tuple[str, str], ...] = ()
    file_prefix: str = field(default="")

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    @property
    def phi_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.phi]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")


CLAIM_TYPES = ("professional", "outpatient", "inpatient", "emergency")
GENDERS = ("F", "M", "U")
REGIONS = ("Northeast", "Southeast", "Central", "Southwest", "Northwest")
PLAN_CODES = ("MCD-TANF", "MCD-CHIP", "MCD-ABD", "MCD-EXP", "MCD-LTC")
SPECIALTIES = (
    "family_medicine",
    "internal_medicine",
    "pediatrics",
    "cardiology",
    "orthopedics",
    "emergency_medicine",
    "radiology",
    "physical_therapy",
    "endocrinology",
    "pulmonology",
)
MAINTENANCE_TYPES = ("ADD", "CHANGE", "TERM")
VACCINE_CODES = ("FLU", "COVID19", "PNEUMO", "TDAP", "HPV", "MMR", "SHINGLES", "HEPB")
DRUG_CLASSES = (
    "antidiabetic",
    "antihypertensive",
    "statin",
    "bronchodilator",
    "antidepressant",
    "antibiotic",
    "analgesic",
    "anticoagulant",
    "other",
)
ICD10_PATTERN = r"^[A-Z][0-9]{2}(\.[0-9A-Z]{1,4})?$"
CPT_PATTERN = r"^[0-9]{5}$"
NDC_PATTERN = r"^[0-9]{5}-[0-9]{4}-[0-9]{2}$"

MEDICAL_CLAIMS = Source(
    name="medical_claims",
    file_format="csv",
    key=("claim_id",),
    description="Medical claims (837-style professional and institutional claims), one CSV per day.",
    columns=(
        Column("claim_id", required=True, description="Payer claim number"),
        Column("member_id", required=True, phi=True, description="Medicaid member id"),
        Column("patient_dob", DATE, phi=True, description="Patient date of birth"),
        Column("provider_id", required=True, description="Rendering provider NPI-like id"),
        Column("provider_specialty", required=True, allowed=SPECIALTIES),
        Column("provider_experience_years", INT, min_value=0, max_value=70),
        Column("claim_type", required=True, allowed=CLAIM_TYPES),
        Column("diagnosis_code", required=True, pattern=ICD10_PATTERN, description="ICD-10-CM"),
        Column("procedure_code", required=True, pattern=CPT_PATTERN, description="CPT/HCPCS"),
        Column("service_start_date", DATE, required=True),
        Column("service_end_date", DATE, required=True),
        Column("claim_amount", MONEY, required=True, min_value=0.0, max_value=5_000_000.0),
        Column("paid_amount", MONEY, min_value=0.0, max_value=5_000_000.0),
    ),
    not_after_receipt=("service_start_date", "service_end_date"),
    ordered_dates=(("service_start_date", "service_end_date"),),
    # a line paying more than was billed is quarantined here, so it cannot block silver's gate for the whole day
    not_above=(("paid_amount", "claim_amount"),),
    file_prefix="claims",
)

PHARMACY_CLAIMS = Source(
    name="pharmacy_claims",
    file_format="jsonl",
    key=("rx_claim_id",),
    description="Pharmacy claims (NCPDP-style), one JSON object per line per day.",
    columns=(
        Column("rx_claim_id", required=True),
        Column("member_id", required=True, phi=True),
        Column("fill_date", DATE, required=True),
        Column("ndc_code", required=True, pattern=NDC_PATTERN),
        Column("drug_class", required=True, allowed=DRUG_CLASSES),
        Column("days_supply", INT, required=True, min_value=1, max_value=365),
        Column("quantity", DOUBLE, min_value=0.0, max_value=100_000.0),
        Column("prescriber_id"),
        Column("pharmacy_id"),
        Column("rx_amount", MONEY, required=True, min_value=0.0, max_value=1_000_000.0),
    ),
    not_after_receipt=("fill_date",),
    file_prefix="rx",
)

MEMBER_ELIGIBILITY = Source(
    name="member_eligibility",
    file_format="csv",
    key=("member_id", "maintenance_type", "eligibility_start_date"),
    description=("Enrollment (834-style): the full roster on the first day, then daily ADD/CHANGE/TERM records."),
    columns=(
        Column("member_id", required=True, phi=True),
        Column("first_name", phi=True),
        Column("last_name", phi=True),
        Column("date_of_birth", DATE, required=True, phi=True),
        Column("gender", required=True, allowed=GENDERS),
        Column("street_address", phi=True),
        Column("city", phi=True),
        Column("zip_code", phi=True, pattern=r"^[0-9]{5}$"),
        Column("geographic_region", required=True, allowed=REGIONS),
        Column("plan_code", required=True, allowed=PLAN_CODES),
        Column("maintenance_type", required=True, allowed=MAINTENANCE_TYPES),
        Column("eligibility_start_date", DATE, required=True),
        Column("eligibility_end_date", DATE),
        Column("bmi", DOUBLE, min_value=10.0, max_value=80.0, description="From the enrolment health screening"),
        Column("smoker", allowed=("Y", "N")),
    ),
    not_after_receipt=("date_of_birth",),
    ordered_dates=(("date_of_birth", "eligibility_start_date"),),
    file_prefix="eligibility",
)

IMMUNIZATIONS = Source(
    name="immunizations",
    file_format="csv",
    key=("immunization_id",),
    description="Immunization registry feed, one CSV per day.",
    columns=(
        Column("immunization_id", required=True),
        Column("member_id", required=True, phi=True),
        Column("vaccine_code", required=True, allowed=VACCINE_CODES),
        Column("administered_date", DATE, required=True),
        Column("provider_id"),
    ),
    not_after_receipt=("administered_date",),
    file_prefix="immunizations",
)

SOURCES: dict[str, Source] = {s.name: s for s in (MEDICAL_CLAIMS, PHARMACY_CLAIMS, MEMBER_ELIGIBILITY, IMMUNIZATIONS)}

# Ground truth written by the generator beside the feeds; never read as a feature.
FRAUD_LABELS_FOLDER = "fraud_labels"
FRAUD_PATTERNS = ("upcoding", "duplicate_billing", "phantom_provider", "unbundling")
