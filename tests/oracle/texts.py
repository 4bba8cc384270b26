"""Oracle texts shared by both virtualenvs (plain data: nothing but the standard library).

Queries are short, long and non-English; documents are fixed biomedical sentences of
several lengths (the tiny tokenizers know few words, so most become [UNK] either way).
"""

from __future__ import annotations

QUERIES = [
    "revenue",
    "total federal expenditures by agency in the fiscal year 2024 executive summary, "
    "compared with the previous year, including interest on the public debt, social "
    "security and medicare outlays, and the budget deficit as a share of GDP",
    "Quelle est la date de ratification de la Déclaration des droits ?",
    "2024年度の財務報告の要約はどこにありますか",
]

DOCUMENTS = [
    "Alterations of the architecture of cerebral white matter in the developing human "
    "brain can affect cortical development and result in functional disabilities.",
    "Myelodysplastic syndromes (MDS) are age-dependent stem cell malignancies that share "
    "biological features of activated adaptive immune response and ineffective "
    "hematopoiesis.",
    "The risk of cancer, including breast cancer, in women with a family history of the "
    "disease has been studied; the results are mixed.",
    "Short text.",
]
