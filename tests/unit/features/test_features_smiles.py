"""SMILES tokenizer, vocabulary, featurizer and RDKit enumeration."""

import json

import numpy as np
import pytest
import torch

from medseq.features.molecules.smiles import (
    PAD_ID,
    UNK_ID,
    SmilesError,
    SmilesFeaturizer,
    SmilesVocabulary,
    detokenize,
    tokenize,
)

TRICKY = [
    # bracket atoms with charge, isotope, chirality and hydrogens; two-letter elements
    (
        "[Na+].[O-]C(=O)c1ccccc1Cl",
        [
            "[Na+]",
            ".",
            "[O-]",
            "C",
            "(",
            "=",
            "O",
            ")",
            "c",
            "1",
            "c",
            "c",
            "c",
            "c",
            "c",
            "1",
            "Cl",
        ],
    ),
    (
        "Br[13CH2][C@@H](N)C(=O)[O-]",
        ["Br", "[13CH2]", "[C@@H]", "(", "N", ")", "C", "(", "=", "O", ")", "[O-]"],
    ),
    ("C%10CCC%10", ["C", "%10", "C", "C", "C", "%10"]),
    ("F/C=C\\F", ["F", "/", "C", "=", "C", "\\", "F"]),
    ("[nH]1cc[se]c1", ["[nH]", "1", "c", "c", "[se]", "c", "1"]),
    ("C#N", ["C", "#", "N"]),
    ("[Fe+3]", ["[Fe+3]"]),
    (
        "c1ccc2c(c1)[N+](=O)[O-].*",
        [
            "c",
            "1",
            "c",
            "c",
            "c",
            "2",
            "c",
            "(",
            "c",
            "1",
            ")",
            "[N+]",
            "(",
            "=",
            "O",
            ")",
            "[O-]",
            ".",
            "*",
        ],
    ),
]


@pytest.mark.parametrize(("smiles", "expected"), TRICKY)
def test_tokenize_tricky_smiles_and_round_trip(smiles, expected):
    tokens = tokenize(smiles)
    assert tokens == expected
    assert detokenize(tokens) == smiles


def test_cl_is_one_token_but_c_then_l_would_be_an_error():
    assert tokenize("CCl") == ["C", "Cl"]
    assert tokenize("CBr") == ["C", "Br"]
    with pytest.raises(SmilesError, match="position 1"):
        tokenize("Cx")


@pytest.mark.parametrize("bad", ["C[NH2", "C]", "C%1", "C C"])
def test_tokenize_rejects_malformed_text_naming_the_smiles(bad):
    with pytest.raises(SmilesError, match="cannot tokenize"):
        tokenize(bad)


def test_vocabulary_unknown_and_state_round_trip():
    vocab = SmilesVocabulary().fit(["CCO", "CCN", "c1ccc1"])
    assert vocab.decode(vocab.encode(tokenize("CCO"))) == ["C", "C", "O"]
    assert vocab.encode(["[Pt]"]) == [UNK_ID]
    state = json.loads(json.dumps(vocab.state_dict()))
    again = SmilesVocabulary.from_state_dict(state)
    assert again.tokens_ == vocab.tokens_
    assert vocab.tokens_[:3] == ["<pad>", "<unk>", "C"]  # most frequent first
    with pytest.raises(ValueError, match="tokens"):
        SmilesVocabulary.from_state_dict({"tokens": ["C"]})


def test_vocabulary_min_count_and_unfitted_error():
    vocab = SmilesVocabulary(min_count=2).fit(["CCO", "CC"])
    assert "O" not in vocab.tokens_ and "C" in vocab.tokens_
    with pytest.raises(RuntimeError, match="not fitted"):
        SmilesVocabulary().encode(["C"])


def test_featurizer_pads_counts_lengths_and_truncates():
    featurizer = SmilesFeaturizer(max_length=4).fit(["CCO", "CCCCCC"])
    out = featurizer.transform(["CCO", "CCCCCC", "C"])
    assert out["tokens"].dtype == np.int64 and out["lengths"].dtype == np.int64
    assert out["tokens"].shape == (3, 4)
    assert out["lengths"].tolist() == [3, 4, 1]
    assert out["tokens"][2, 1:].tolist() == [PAD_ID] * 3
    assert featurizer.n_truncated_ == 1
    again = SmilesFeaturizer.from_state_dict(json.loads(json.dumps(featurizer.state_dict())))
    np.testing.assert_array_equal(
        again.transform(["CCO"])["tokens"], featurizer.transform(["CCO"])["tokens"]
    )


def test_enumeration_keeps_the_molecule():
    pytest.importorskip("rdkit")
    from medseq.features.molecules.smiles_enumeration import canonical_smiles, random_smiles

    smiles = "C[C@@H](Cl)c1ccc2ccccc2c1.[Na+]"
    variants = random_smiles(smiles, 8, seed=3)
    assert len(set(variants)) > 1
    assert {canonical_smiles(v) for v in variants} == {canonical_smiles(smiles)}
    assert random_smiles(smiles, 8, seed=3) == variants  # seeded


def test_enumeration_augment_rewrites_rows_reproducibly():
    pytest.importorskip("rdkit")
    from medseq.features.molecules.smiles_enumeration import (
        SmilesEnumerationAugment,
        canonical_smiles,
    )

    smiles = ["CCOc1ccc2nc(S(N)(=O)=O)sc2c1", "CCN1C(=O)NC(c2ccccc2)C1=O"]
    featurizer = SmilesFeaturizer().fit(smiles * 3)
    batch = {k: torch.as_tensor(v) for k, v in featurizer.transform(smiles).items()}
    batch["y"] = torch.tensor([[1.0], [0.0]])
    augment = SmilesEnumerationAugment(featurizer)
    out = augment(batch, torch.Generator().manual_seed(0))
    again = augment(batch, torch.Generator().manual_seed(0))
    assert torch.equal(out["tokens"], again["tokens"])
    assert out["y"] is batch["y"]
    for row, original in zip(range(2), smiles, strict=True):
        ids = out["tokens"][row, : out["lengths"][row]].tolist()
        text = "".join(featurizer.vocabulary.decode(ids))
        assert canonical_smiles(text) == canonical_smiles(original)


def test_test_time_variants_do_not_depend_on_position_and_model_averages_them():
    pytest.importorskip("rdkit")
    from medseq.features.molecules.smiles_enumeration import canonical_smiles
    from medseq.models.smiles_rnn import SmilesRNN, SmilesRNNConfig

    smiles = ["CCOc1ccc2nc(S(N)(=O)=O)sc2c1", "O=CO[AlH3](OC=O)OC=O"]
    featurizer = SmilesFeaturizer(n_enumerations=3).fit(smiles)
    out = featurizer.transform(smiles)
    assert out["tokens"].shape[:2] == (2, 4) and out["lengths"].shape == (2,)
    texts = ["".join(featurizer.vocabulary.decode(r)) for r in out["tokens"][0]]
    assert texts[0] == smiles[0] and len(set(texts)) > 1
    assert {canonical_smiles(t) for t in texts} == {canonical_smiles(smiles[0])}
    swapped = featurizer.transform(smiles[::-1])["tokens"][1]
    width = min(swapped.shape[1], out["tokens"].shape[2])
    np.testing.assert_array_equal(swapped[:, :width], out["tokens"][0][:, :width])
    torch.manual_seed(0)
    model = SmilesRNN(SmilesRNNConfig(vocab_size=featurizer.vocab_size, hidden_size=8)).eval()
    tokens = torch.as_tensor(out["tokens"])
    averaged = model(tokens=tokens, lengths=torch.as_tensor(out["lengths"]))
    each = [model(tokens=tokens[:, v], lengths=(tokens[:, v] != 0).sum(1)) for v in range(4)]
    torch.testing.assert_close(averaged, torch.stack(each).mean(0))
