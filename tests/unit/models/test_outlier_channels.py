"""The outlier-channel split of the int8 recipe, on small hand-made graphs."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from models.outlier_channels import (
    OutlierPolicy,
    calibration_token_ids,
    outlier_channels,
    split_outlier_channels,
)

POLICY = OutlierPolicy(threshold=7.0, max_channels_per_input=2)


def _two_matmul_graph(weights: list[np.ndarray]) -> onnx.ModelProto:
    """x [n, 6] → LayerNorm → two weight MatMuls on the same input → their sum."""
    nodes = [helper.make_node("LayerNormalization", ["x", "gamma", "beta"], ["normed"], axis=-1, name="norm")]
    initializers = [
        numpy_helper.from_array(np.linspace(0.5, 1.5, 6).astype(np.float32), "gamma"),
        numpy_helper.from_array(np.zeros(6, np.float32), "beta"),
    ]
    for index, weight in enumerate(weights):
        initializers.append(numpy_helper.from_array(weight, f"w{index}"))
        nodes.append(
            helper.make_node("MatMul", ["normed", f"w{index}"], [f"y{index}"], name=f"matmul{index}")
        )
    nodes.append(helper.make_node("Add", ["y0", "y1"], ["y"], name="sum"))
    graph = helper.make_graph(
        nodes,
        "test",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
        initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(["y"], {"x": x})[0]


def test_outlier_channels_are_those_far_above_the_median_at_most_a_few() -> None:
    maxima = np.array([1.0, 1.2, 30.0, 0.9, 9.0, 1.1, 50.0], dtype=np.float32)
    assert outlier_channels(maxima, POLICY) == [2, 6]  # 9.0 qualifies too (median 1.2), but only two are kept
    assert outlier_channels(maxima, OutlierPolicy(threshold=7.0, max_channels_per_input=4)) == [2, 4, 6]
    assert outlier_channels(np.ones(5, dtype=np.float32), POLICY) == []


def test_split_computes_the_same_function_and_moves_outlier_rows_to_small_float_matmuls() -> None:
    rng = np.random.default_rng(1)
    weights = [rng.normal(size=(6, 3)).astype(np.float32) for _ in range(2)]
    model = _two_matmul_graph(weights)
    maxima = {"normed": np.array([1.0, 1.0, 20.0, 1.0, 1.0, 1.0], dtype=np.float32)}

    split = split_outlier_channels(model, maxima, POLICY)

    assert split.channels == {"normed": [2]}
    assert sorted(split.float_matmul_names) == ["matmul0/outliers", "matmul1/outliers"]
    initializers = {item.name: numpy_helper.to_array(item) for item in split.model.graph.initializer}
    for index, weight in enumerate(weights):
        np.testing.assert_array_equal(initializers[f"w{index}/outlier_rows"], weight[[2], :])
        assert not initializers[f"w{index}"][2].any()  # the int8 MatMul no longer sees channel 2
    x = rng.normal(size=(5, 6)).astype(np.float32)
    np.testing.assert_allclose(_run(split.model, x), _run(model, x), rtol=1e-5, atol=1e-5)
    # The input model is left as it was.
    assert [node.op_type for node in model.graph.node].count("MatMul") == 2


def test_no_outliers_leaves_the_graph_alone() -> None:
    rng = np.random.default_rng(2)
    model = _two_matmul_graph([rng.normal(size=(6, 3)).astype(np.float32) for _ in range(2)])
    split = split_outlier_channels(model, {"normed": np.ones(6, dtype=np.float32)}, POLICY)
    assert split.float_matmul_names == [] and split.channels == {}
    assert [node.name for node in split.model.graph.node] == [node.name for node in model.graph.node]


def test_calibration_sequences_are_seeded_and_hold_no_special_tokens() -> None:
    vocabulary = {"[PAD]": 0, "[CLS]": 1, "[SEP]": 2, "[unused0]": 3, "the": 4, "lord": 5, "##s": 6}
    policy = OutlierPolicy(calibration_sequences=20, min_tokens=2, max_tokens=5)
    first = calibration_token_ids(vocabulary, cls_id=1, sep_id=2, policy=policy)
    assert first == calibration_token_ids(vocabulary, cls_id=1, sep_id=2, policy=policy)
    assert len(first) == 20
    for sequence in first:
        assert sequence[0] == 1 and sequence[-1] == 2
        assert 2 <= len(sequence) - 2 <= 5
        assert set(sequence[1:-1]) <= {4, 5, 6}
