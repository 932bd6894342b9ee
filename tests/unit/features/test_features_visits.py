"""ICD-9 grouping, the code vocabulary and multi-hot visit tensors on the real MIMIC demo."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medseq.features.histories.visits import VisitFeaturizer
from medseq.features.histories.vocabulary import UNKNOWN, Vocabulary
from medseq.features.icu.normalizer import NotFittedError
from medseq.features.registry import featurizer_from_state_dict
from medseq.paths import dataset_dir
from medseq.sources import icd9, mimic3
from medseq.tasks import histories


@pytest.mark.parametrize(
    ("code", "chapter"),
    [
        ("ICD9DX/0010", "01"),
        ("ICD9DX/1399", "01"),
        ("ICD9DX/1400", "02"),
        ("ICD9DX/2399", "02"),
        ("ICD9DX/2400", "03"),
        ("ICD9DX/2799", "03"),
        ("ICD9DX/2800", "04"),
        ("ICD9DX/2899", "04"),
        ("ICD9DX/2900", "05"),
        ("ICD9DX/3199", "05"),
        ("ICD9DX/3200", "06"),
        ("ICD9DX/3899", "06"),
        ("ICD9DX/3900", "07"),
        ("ICD9DX/4599", "07"),
        ("ICD9DX/4600", "08"),
        ("ICD9DX/5199", "08"),
        ("ICD9DX/5200", "09"),
        ("ICD9DX/5799", "09"),
        ("ICD9DX/5800", "10"),
        ("ICD9DX/6299", "10"),
        ("ICD9DX/6300", "11"),
        ("ICD9DX/6799", "11"),
        ("ICD9DX/6800", "12"),
        ("ICD9DX/7099", "12"),
        ("ICD9DX/7100", "13"),
        ("ICD9DX/7399", "13"),
        ("ICD9DX/7400", "14"),
        ("ICD9DX/7599", "14"),
        ("ICD9DX/7600", "15"),
        ("ICD9DX/7799", "15"),
        ("ICD9DX/7800", "16"),
        ("ICD9DX/7999", "16"),
        ("ICD9DX/800", "17"),
        ("ICD9DX/99999", "17"),
        ("ICD9DX/V1582", "V"),
        ("ICD9DX/E8788", "E"),
    ],
)
def test_diagnosis_chapter_boundaries(code, chapter):
    assert icd9.chapter(code) == icd9.DX_CHAPTER_PREFIX + chapter


@pytest.mark.parametrize(
    ("code", "chapter"),
    [
        ("ICD9PX/0011", "00"),
        ("ICD9PX/0100", "01"),
        ("ICD9PX/0599", "01"),
        ("ICD9PX/1600", "03"),
        ("ICD9PX/1700", "3A"),
        ("ICD9PX/1800", "04"),
        ("ICD9PX/3893", "07"),
        ("ICD9PX/8699", "15"),
        ("ICD9PX/8700", "16"),
        ("ICD9PX/9999", "16"),
    ],
)
def test_procedure_chapter_boundaries(code, chapter):
    assert icd9.chapter(code) == icd9.PX_CHAPTER_PREFIX + chapter


def test_three_digit_groups_and_malformed_codes():
    assert icd9.three_digit("ICD9DX/4019") == "ICD9DX/401"
    assert icd9.three_digit("ICD9DX/V4581") == "ICD9DX/V45"
    assert icd9.three_digit("ICD9DX/E8788") == "ICD9DX/E878"
    assert icd9.three_digit("ICD9PX/3893") == "ICD9PX/38"
    for bad in ("ICD9DX/XYZ", "ICD9DX/40", "ICD9PX/V12", "NDC/0001"):
        assert icd9.three_digit(bad) is None and icd9.chapter(bad) is None
    assert icd9.group("NDC/00338004904", "chapter") == "NDC/00338004904"
    assert icd9.group("ICD9DX/XYZ", "three_digit") is None
    assert icd9.chapter_title("ICD9DX_CHAPTER/07") == "Diseases of the circulatory system"
    with pytest.raises(ValueError, match="level must be"):
        icd9.group("ICD9DX/4019", "four_digit")


def test_every_demo_diagnosis_has_a_chapter():
    demo = mimic3.read(dataset_dir("mimic3demo"))
    dx = demo.events.loc[demo.events["code"].str.startswith("ICD9DX/"), "code"].unique()
    assert all(icd9.chapter(c) is not None for c in dx)


def test_vocabulary_min_count_unknown_and_state():
    vocab = Vocabulary(min_count=2).fit(["b", "a", "b", "c", "a", "d"])
    assert vocab.tokens_ == [UNKNOWN, "a", "b"]
    assert vocab.index(["b", "c", "zzz", "a"]).tolist() == [2, 0, 0, 1]
    state = json.loads(json.dumps(vocab.state_dict()))
    assert Vocabulary.from_state_dict(state).tokens_ == vocab.tokens_
    with pytest.raises(NotFittedError):
        len(Vocabulary())
    with pytest.raises(ValueError, match="reserved"):
        Vocabulary().fit([UNKNOWN])
    with pytest.raises(ValueError, match="min_count must be an integer >= 1"):
        Vocabulary(min_count=0)
    with pytest.raises(ValueError, match="unknown keys"):
        Vocabulary.from_state_dict({**state, "extra": 1})


@pytest.fixture(scope="module")
def demo():
    return mimic3.read(dataset_dir("mimic3demo"))


def test_inputs_stop_at_the_cutoff(demo):
    table = histories.samples(demo, "mortality")
    f = VisitFeaturizer("mortality").fit(demo, table)
    arrays = f.transform(demo, table)
    names = np.array(f.code_names)
    last = arrays["visits"][np.arange(len(table)), arrays["lengths"] - 1]  # current stay
    seen = set(names[np.flatnonzero(last.sum(0))])
    assert not any(c.startswith(("ICD9DX/", "ICD9PX/", "DISCHARGE/")) for c in seen)
    assert any(c.startswith("ADMISSION/") for c in seen)
    nv = histories.samples(demo, "next_visit")
    g = VisitFeaturizer("next_visit").fit(demo, nv)
    lengths = g.transform(demo, nv)["lengths"]
    assert (lengths == (nv.index.to_numpy() % 1000)).all()  # visits before the target only


def test_fit_on_training_samples_only_and_state_round_trip(demo):
    table = histories.samples(demo, "next_visit")
    train, test = table.iloc[:10], table.iloc[10:]
    f = VisitFeaturizer("next_visit", level="three_digit", min_count=2).fit(demo, train)
    out = f.transform(demo, test)
    assert out["visits"].shape[2] == f.n_codes and out["visits"].dtype == np.float32
    assert out["visits"][..., 0].sum() > 0  # codes met only at test land in <unk>
    assert set(np.unique(out["visits"])) <= {0.0, 1.0}
    state = json.loads(json.dumps(f.state_dict()))
    g = featurizer_from_state_dict(state)
    again = g.transform(demo, test)
    assert np.array_equal(again["visits"], out["visits"])
    assert np.array_equal(again["lengths"], out["lengths"])
    capped = VisitFeaturizer("next_visit", max_visits=3).fit(demo, train).transform(demo, test)
    assert capped["lengths"].max() == 3


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="level must be one of"):
        VisitFeaturizer("mortality", level="four_digit")
    with pytest.raises(ValueError, match="max_visits must be an integer >= 1"):
        VisitFeaturizer("mortality", max_visits=0)
    with pytest.raises(NotFittedError):
        _ = VisitFeaturizer("mortality").n_codes
