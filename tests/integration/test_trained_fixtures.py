from medseq.bundle import load_bundle


def test_trained_bundles_learn_something(trained_gru_bundle, trained_grud_bundle):
    for path in (trained_gru_bundle, trained_grud_bundle):
        bundle = load_bundle(path)
        auroc = bundle.metrics["test"]["auroc"][0]
        assert auroc > 0.65, f"{path}: a 6-epoch model should beat chance clearly, got {auroc}"
