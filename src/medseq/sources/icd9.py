"""ICD-9-CM structure: three-digit categories and chapters of diagnosis and procedure codes.

Codes come without the dot, namespaced as the readers write them (``ICD9DX/4019`` is the
diagnosis 401.9, ``ICD9PX/3893`` the procedure 38.93). A diagnosis's category is its first
three characters (four for ``E`` codes: ``E878``); a procedure's is its first two digits.
The chapter tables below are written from the chapter definitions of ICD-9-CM (volume 1,
tabular list of diseases: 17 chapters plus the V and E supplementary classifications;
volume 3, procedures: 18 chapters, 00 and 17 added to the original 16).
"""

from __future__ import annotations

import re

DX_PREFIX = "ICD9DX/"
PX_PREFIX = "ICD9PX/"
DX_CHAPTER_PREFIX = "ICD9DX_CHAPTER/"
PX_CHAPTER_PREFIX = "ICD9PX_CHAPTER/"

#: Diagnosis chapters: (first category, last category, chapter id, title); V and E apart.
DX_CHAPTERS: tuple[tuple[int, int, str, str], ...] = (
    (1, 139, "01", "Infectious and parasitic diseases"),
    (140, 239, "02", "Neoplasms"),
    (240, 279, "03", "Endocrine, nutritional and metabolic diseases, and immunity disorders"),
    (280, 289, "04", "Diseases of the blood and blood-forming organs"),
    (290, 319, "05", "Mental disorders"),
    (320, 389, "06", "Diseases of the nervous system and sense organs"),
    (390, 459, "07", "Diseases of the circulatory system"),
    (460, 519, "08", "Diseases of the respiratory system"),
    (520, 579, "09", "Diseases of the digestive system"),
    (580, 629, "10", "Diseases of the genitourinary system"),
    (630, 679, "11", "Complications of pregnancy, childbirth, and the puerperium"),
    (680, 709, "12", "Diseases of the skin and subcutaneous tissue"),
    (710, 739, "13", "Diseases of the musculoskeletal system and connective tissue"),
    (740, 759, "14", "Congenital anomalies"),
    (760, 779, "15", "Certain conditions originating in the perinatal period"),
    (780, 799, "16", "Symptoms, signs, and ill-defined conditions"),
    (800, 999, "17", "Injury and poisoning"),
)
DX_SUPPLEMENTARY = {
    "V": ("V", "Factors influencing health status and contact with health services"),
    "E": ("E", "External causes of injury and poisoning"),
}

#: Procedure chapters (two-digit categories).
PX_CHAPTERS: tuple[tuple[int, int, str, str], ...] = (
    (0, 0, "00", "Procedures and interventions, not elsewhere classified"),
    (1, 5, "01", "Operations on the nervous system"),
    (6, 7, "02", "Operations on the endocrine system"),
    (8, 16, "03", "Operations on the eye"),
    (17, 17, "3A", "Other miscellaneous diagnostic and therapeutic procedures"),
    (18, 20, "04", "Operations on the ear"),
    (21, 29, "05", "Operations on the nose, mouth, and pharynx"),
    (30, 34, "06", "Operations on the respiratory system"),
    (35, 39, "07", "Operations on the cardiovascular system"),
    (40, 41, "08", "Operations on the hemic and lymphatic system"),
    (42, 54, "09", "Operations on the digestive system"),
    (55, 59, "10", "Operations on the urinary system"),
    (60, 64, "11", "Operations on the male genital organs"),
    (65, 71, "12", "Operations on the female genital organs"),
    (72, 75, "13", "Obstetrical procedures"),
    (76, 84, "14", "Operations on the musculoskeletal system"),
    (85, 86, "15", "Operations on the integumentary system"),
    (87, 99, "16", "Miscellaneous diagnostic and therapeutic procedures"),
)

_DX = re.compile(r"^(?:\d{3,5}|V\d{2,4}|E\d{3,4})$")
_PX = re.compile(r"^\d{2,4}$")


def _split(code: str) -> tuple[str, str] | None:
    for prefix, pattern in ((DX_PREFIX, _DX), (PX_PREFIX, _PX)):
        if code.startswith(prefix):
            body = code[len(prefix) :]
            return (prefix, body) if pattern.match(body) else None
    return None


def is_icd9(code: str) -> bool:
    """Whether ``code`` is a well-formed namespaced ICD-9 diagnosis or procedure code."""
    return _split(code) is not None


def three_digit(code: str) -> str | None:
    """The category of an ICD-9 code (``ICD9DX/4019`` -> ``ICD9DX/401``); None if not ICD-9.

    Examples
    --------
    >>> three_digit("ICD9DX/E8788"), three_digit("ICD9DX/V4581"), three_digit("ICD9PX/3893")
    ('ICD9DX/E878', 'ICD9DX/V45', 'ICD9PX/38')
    """
    parts = _split(code)
    if parts is None:
        return None
    prefix, body = parts
    if prefix == PX_PREFIX:
        return prefix + body[:2]
    return prefix + body[: 4 if body.startswith("E") else 3]


def chapter(code: str) -> str | None:
    """The chapter of an ICD-9 code (``ICD9DX/4019`` -> ``ICD9DX_CHAPTER/07``); None if not ICD-9.

    Examples
    --------
    >>> chapter("ICD9DX/1390"), chapter("ICD9DX/1400"), chapter("ICD9DX/V3000")
    ('ICD9DX_CHAPTER/01', 'ICD9DX_CHAPTER/02', 'ICD9DX_CHAPTER/V')
    """
    parts = _split(code)
    if parts is None:
        return None
    prefix, body = parts
    if prefix == DX_PREFIX:
        if body[0] in DX_SUPPLEMENTARY:
            return DX_CHAPTER_PREFIX + DX_SUPPLEMENTARY[body[0]][0]
        return DX_CHAPTER_PREFIX + _lookup(DX_CHAPTERS, int(body[:3]))
    return PX_CHAPTER_PREFIX + _lookup(PX_CHAPTERS, int(body[:2]))


def _lookup(table: tuple[tuple[int, int, str, str], ...], category: int) -> str:
    for first, last, chapter_id, _ in table:
        if first <= category <= last:
            return chapter_id
    raise ValueError(f"ICD-9 category {category:03d} is in no chapter")


def chapter_title(chapter_code: str) -> str:
    """The title of ``ICD9DX_CHAPTER/<id>`` or ``ICD9PX_CHAPTER/<id>``."""
    if chapter_code.startswith(DX_CHAPTER_PREFIX):
        wanted, rows = chapter_code[len(DX_CHAPTER_PREFIX) :], DX_CHAPTERS
        extra = {k: v[1] for k, v in DX_SUPPLEMENTARY.items()}
    elif chapter_code.startswith(PX_CHAPTER_PREFIX):
        wanted, rows, extra = chapter_code[len(PX_CHAPTER_PREFIX) :], PX_CHAPTERS, {}
    else:
        raise ValueError(f"{chapter_code!r} is not an ICD-9 chapter code")
    titles = {cid: title for _, _, cid, title in rows} | extra
    if wanted not in titles:
        raise ValueError(f"{chapter_code!r}: unknown chapter; known {sorted(titles)}")
    return titles[wanted]


def group(code: str, level: str) -> str | None:
    """``code`` grouped at ``level``: ``"code"`` (itself), ``"three_digit"`` or ``"chapter"``.

    Codes that are not ICD-9 (drugs, admissions) are returned unchanged at every level;
    malformed ICD-9 codes (``ICD9DX/XYZ``) give None.
    """
    if level == "code":
        return code
    if level not in ("three_digit", "chapter"):
        raise ValueError(f"level must be 'code', 'three_digit' or 'chapter', got {level!r}")
    if not code.startswith((DX_PREFIX, PX_PREFIX)):
        return code
    return three_digit(code) if level == "three_digit" else chapter(code)


def parent_code(code: str) -> str | None:
    """The three-digit category of an ICD-9 code when it differs from the code, else None."""
    parent = three_digit(code)
    return parent if parent is not None and parent != code else None
