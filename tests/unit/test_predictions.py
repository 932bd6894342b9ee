"""The prediction table of ``medseq predict`` (torch and ONNX) for per-step models."""

from __future__ import annotations

import numpy as np

from medseq.predictions import output_lengths, prediction_frame


def test_per_step_predictions_give_one_row_per_id_and_step_up_to_its_length():
    pred = np.random.default_rng(0).dirichlet([1, 1], size=(2, 4))  # (N, T', K)
    frame = prediction_frame(np.array([7, 9]), pred, "multiclass", None, ["no", "yes"],
                             np.array([3, 1]))  # fmt: skip
    assert frame.subject_id.tolist() == [7, 7, 7, 9] and frame.step.tolist() == [0, 1, 2, 0]
    np.testing.assert_array_equal(frame[["p_no", "p_yes"]], np.r_[pred[0, :3], pred[1, :1]])
    assert frame.prediction.tolist() == [["no", "yes"][k] for k in frame[["p_no", "p_yes"]]
                                         .to_numpy().argmax(axis=1)]  # fmt: skip
    alarm = prediction_frame(np.array([7, 9]), pred, "multiclass", 0.05, ["no", "yes"])
    assert len(alarm) == 8
    assert (alarm.prediction == "yes").tolist() == (alarm.p_yes >= 0.05).tolist()


def test_output_lengths_only_where_the_model_keeps_the_input_steps():
    features = {"values": np.zeros((2, 4, 3)), "lengths": np.array([3, 1])}
    np.testing.assert_array_equal(output_lengths(features, np.zeros((2, 4, 2))), [3, 1])
    assert output_lengths(features, np.zeros((2, 2, 2))) is None  # strided: T' != T
    assert output_lengths(features, np.zeros((2, 2))) is None  # one answer per sample
