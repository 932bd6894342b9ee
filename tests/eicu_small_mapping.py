"""A small eICU demo mapping and the hospital-mortality task, shared by the tests of the
``flat_events`` dataset and of its federated sites (real eICU tables, a few of them, so the
tests stay quick). ``MAPPING`` takes the demo folder as ``root``."""

from __future__ import annotations

MAPPING = """
root = "{root}"
on_bad_row = "warn"

[groups]
code_prefix = "HOSPITAL/"

[[events]]
path = "patient.csv.gz"
subject = "patientunitstayid"
time_unit = "minutes"
at_hour = 0
code = "hospitalid"
code_prefix = "HOSPITAL/"

[[events]]
path = "patient.csv.gz"
subject = "patientunitstayid"
time_unit = "minutes"
at_hour = 0
code = "unittype"
code_prefix = "ICU_ADMISSION/"

[[events]]
path = "patient.csv.gz"
subject = "patientunitstayid"
time = "hospitaldischargeoffset"
time_unit = "minutes"
code = "hospitaldischargestatus"
code_prefix = "HOSPITAL_DISCHARGE/"

[[events]]
path = "treatment.csv.gz"
subject = "patientunitstayid"
time = "treatmentoffset"
time_unit = "minutes"
code = "treatmentstring"
code_prefix = "eicu.treatment|"

[[events]]
path = "vitalAperiodic.csv.gz"
subject = "patientunitstayid"
time = "observationoffset"
time_unit = "minutes"
values = {{ noninvasivesystolic = "eicu.vital|nbp_sys" }}
"""

TASK = {
    "prediction_time": {"anchor": ["ICU_ADMISSION/*"], "offset_hours": 24},
    "cohort": {"exclude_codes": ["HOSPITAL_DISCHARGE/*"]},
    "label": {
        "codes": ["HOSPITAL_DISCHARGE/Expired"],
        "within_hours": 87660,
        "censored": "negative",
    },
    "observation": {"visit_hours": 4},
}
