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
        Column("claim_id", required=True, description="Payer claim number (the natural key of a claim line)"),
        Column("member_id", required=True, phi=True, description="Medicaid member id (direct identifier)"),
        Column("patient_dob", DATE, phi=True, description="Patient date of birth as billed (direct identifier)"),
        Column("provider_id", required=True, description="Rendering provider NPI-like id"),
        Column("provider_specialty", required=True, allowed=SPECIALTIES, description="Rendering provider's specialty"),
        Column(
            "provider_experience_years", INT, min_value=0, max_value=70, description="Years the provider has practised"
        ),
        Column(
            "claim_type",
            required=True,
            allowed=CLAIM_TYPES,
            description="professional, outpatient, inpatient or emergency",
        ),
        Column("diagnosis_code", required=True, pattern=ICD10_PATTERN, description="Primary diagnosis, ICD-10-CM code"),
        Column("procedure_code", required=True, pattern=CPT_PATTERN, description="Procedure, CPT/HCPCS code"),
        Column("service_start_date", DATE, required=True, description="First day of service"),
        Column("service_end_date", DATE, required=True, description="Last day of service"),
        Column(
            "claim_amount",
            MONEY,
            required=True,
            min_value=0.0,
            max_value=5_000_000.0,
            description="Billed amount in USD",
        ),
        Column("paid_amount", MONEY, min_value=0.0, max_value=5_000_000.0, description="Amount the payer paid in USD"),
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
        Column("rx_claim_id", required=True, description="Pharmacy claim number (natural key)"),
        Column("member_id", required=True, phi=True, description="Medicaid member id (direct identifier)"),
        Column("fill_date", DATE, required=True, description="Day the prescription was filled"),
        Column("ndc_code", required=True, pattern=NDC_PATTERN, description="National Drug Code of the product"),
        Column("drug_class", required=True, allowed=DRUG_CLASSES, description="Therapeutic class of the drug"),
        Column("days_supply", INT, required=True, min_value=1, max_value=365, description="Days the fill lasts"),
        Column("quantity", DOUBLE, min_value=0.0, max_value=100_000.0, description="Units dispensed"),
        Column("prescriber_id", description="Prescribing provider id"),
        Column("pharmacy_id", description="Dispensing pharmacy id"),
        Column(
            "rx_amount",
            MONEY,
            required=True,
            min_value=0.0,
            max_value=1_000_000.0,
            description="Amount of the fill in USD",
        ),
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
        Column("member_id", required=True, phi=True, description="Medicaid member id (direct identifier)"),
        Column("first_name", phi=True, description="Member first name (direct identifier)"),
        Column("last_name", phi=True, description="Member last name (direct identifier)"),
        Column("date_of_birth", DATE, required=True, phi=True, description="Member date of birth (direct identifier)"),
        Column("gender", required=True, allowed=GENDERS, description="F, M or U (unknown)"),
        Column("street_address", phi=True, description="Street address (direct identifier)"),
        Column("city", phi=True, description="City of residence (direct identifier)"),
        Column("zip_code", phi=True, pattern=r"^[0-9]{5}$", description="ZIP code (direct identifier)"),
        Column("geographic_region", required=True, allowed=REGIONS, description="One of five state regions"),
        Column(
            "plan_code", required=True, allowed=PLAN_CODES, description="Medicaid program the member is enrolled in"
        ),
        Column(
            "maintenance_type",
            required=True,
            allowed=MAINTENANCE_TYPES,
            description="834 maintenance: ADD (new), CHANGE or TERM (end of enrolment)",
        ),
        Column("eligibility_start_date", DATE, required=True, description="First day of the enrolment span"),
        Column("eligibility_end_date", DATE, description="Last day of the enrolment span (TERM records)"),
        Column("bmi", DOUBLE, min_value=10.0, max_value=80.0, description="From the enrolment health screening"),
        Column("smoker", allowed=("Y", "N"), description="Y or N, from the enrolment health screening"),
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
        Column("immunization_id", required=True, description="Registry record number (natural key)"),
        Column("member_id", required=True, phi=True, description="Medicaid member id (direct identifier)"),
        Column("vaccine_code", required=True, allowed=VACCINE_CODES, description="Vaccine given"),
        Column("administered_date", DATE, required=True, description="Day the vaccine was given"),
        Column("provider_id", description="Administering provider id"),
    ),
    not_after_receipt=("administered_date",),
    file_prefix="immunizations",
)

SOURCES: dict[str, Source] = {s.name: s for s in (MEDICAL_CLAIMS, PHARMACY_CLAIMS, MEMBER_ELIGIBILITY, IMMUNIZATIONS)}

# Ground truth written by the generator beside the feeds; never read as a feature.
FRAUD_LABELS_FOLDER = "fraud_labels"
FRAUD_PATTERNS = ("upcoding", "duplicate_billing", "phantom_provider", "unbundling")
