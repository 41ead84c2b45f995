"""Keep activation outlier channels out of the int8 MatMuls: the accuracy half of the int8 recipe.

A few hidden channels of this model carry activations ten to fifteen times larger than the
median channel (channel 99 after every attention LayerNorm, for instance). Dynamic quantization
picks one activation scale per tensor, so those few channels set the step size of all the others
and most of the int8 error comes from them: quantizing the weights alone costs almost nothing
(worst cosine 0.9965 against the reference), quantizing the activations costs the rest.

So, as in LLM.int8(), each MatMul whose input has outlier channels is split in two:

    X · W  =  (X with the outlier channels zeroed) · W_rest   ← int8, a tight activation scale
           +  X[..., outliers] · W[outliers, :]               ← fp32, a [k × out] MatMul, k ≤ 4

The channels are chosen once, when the model is built, from the fp32 graph's own activations on
calibration sequences of random vocabulary tokens (seeded, so the build is deterministic, and no
corpus is needed: the outlier channels are a property of the weights, not of the text). See
docs/embedding.md, "Variants", for the measurements behind the defaults.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from models.batch_planning import BatchLimits, plan_batches
from models.errors import ModelBuildError

if TYPE_CHECKING:
    import numpy as np
    import onnx

# numpy, onnx and onnxruntime are imported inside the functions: models.build reads the policy
# on every up-to-date check, which should not pay for loading them.


@dataclass(frozen=True)
class OutlierPolicy:
    """Which channels count as outliers, and the calibration that measures them."""

    # A channel is an outlier when its largest |activation| exceeds this many times the median
    # channel's. 7 kept 13-16 channels in all and gave the best accuracy per millisecond.
    threshold: float = 7.0
    max_channels_per_input: int = 4
    calibration_sequences: int = 400
    min_tokens: int = 4
    max_tokens: int = 64
    seed: int = 0

    def as_recipe(self) -> dict[str, float | int]:
        """The policy as it enters the build hash."""
        return asdict(self)


@dataclass(frozen=True)
class OutlierSplit:
    """The rewritten fp32 graph, the fp32 MatMuls it added, and the channels split per input."""

    model: onnx.ModelProto
    float_matmul_names: list[str]
    channels: dict[str, list[int]]


def calibration_token_ids(
    vocabulary: dict[str, int], *, cls_id: int, sep_id: int, policy: OutlierPolicy
) -> list[list[int]]:
    """Seeded sequences of random ordinary tokens (no ``[...]`` specials), framed by [CLS] and [SEP]."""
    import numpy as np

    ordinary = np.array(
        sorted(index for token, index in vocabulary.items() if not token.startswith("[")), dtype=np.int64
    )
    generator = np.random.default_rng(policy.seed)
    sequences = []
    for _ in range(policy.calibration_sequences):
        length = int(generator.integers(policy.min_tokens, policy.max_tokens + 1))
        sequences.append([cls_id, *generator.choice(ordinary, size=length).tolist(), sep_id])
    return sequences


def weight_matmuls(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """The MatMuls whose second input is a weight (an initializer): the ones quantization touches."""
    weights = {initializer.name for initializer in model.graph.initializer}
    return [node for node in model.graph.node if node.op_type == "MatMul" and node.input[1] in weights]


def measure_channel_maxima(model: onnx.ModelProto, token_ids: list[list[int]]) -> dict[str, np.ndarray]:
    """Largest |activation| per channel of every weight MatMul's input, over real (unpadded) tokens."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from models.graph_builder import ATTENTION_MASK, INPUT_IDS

    inputs = sorted({node.input[0] for node in weight_matmuls(model)})
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for name in inputs:
        probe.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])

    maxima: dict[str, np.ndarray] = {}
    limits = BatchLimits(max_rows=64, max_tokens=8192)
    for batch in plan_batches([len(ids) for ids in token_ids], limits):
        input_ids = np.zeros((len(batch.indices), batch.padded_length), dtype=np.int64)
        mask = np.zeros_like(input_ids)
        for row, index in enumerate(batch.indices):
            input_ids[row, : len(token_ids[index])] = token_ids[index]
            mask[row, : len(token_ids[index])] = 1
        activations = session.run(inputs, {INPUT_IDS: input_ids, ATTENTION_MASK: mask})
        for name, activation in zip(inputs, activations, strict=True):
            batch_maxima = np.abs(activation[mask.astype(bool)]).max(axis=0)
            maxima[name] = np.maximum(maxima[name], batch_maxima) if name in maxima else batch_maxima
    return maxima


def outlier_channels(maxima: np.ndarray, policy: OutlierPolicy) -> list[int]:
    """The (at most ``max_channels_per_input``) channels whose maximum is ``threshold`` × the median."""
    import numpy as np

    median = float(np.median(maxima))
    largest_first = np.argsort(-maxima, kind="stable")[: policy.max_channels_per_input]
    return sorted(int(channel) for channel in largest_first if maxima[channel] > policy.threshold * median)


def split_outlier_channels(
    model: onnx.ModelProto, maxima: dict[str, np.ndarray], policy: OutlierPolicy
) -> OutlierSplit:
    """A copy of ``model`` with every weight MatMul on an input with outliers split in two (see above).

    The result computes the same function in fp32 (up to float rounding); only after quantization
    does the split matter.
    """
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    split = onnx.ModelProto()
    split.CopyFrom(model)
    graph = split.graph
    initializers = {initializer.name: initializer for initializer in graph.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for node in weight_matmuls(split):
        consumers[node.input[0]].append(node)

    added: list[onnx.NodeProto] = []
    float_matmul_names: list[str] = []
    channels_by_input: dict[str, list[int]] = {}
    for activation, matmuls in consumers.items():
        channels = outlier_channels(maxima[activation], policy)
        if not channels:
            continue
        channels_by_input[activation] = channels
        width = maxima[activation].shape[0]
        keep = np.ones(width, dtype=np.float32)
        keep[channels] = 0.0
        prefix = f"{activation}/outliers"
        graph.initializer.extend(
            [
                numpy_helper.from_array(np.array(channels, dtype=np.int64), f"{prefix}/channels"),
                numpy_helper.from_array(keep, f"{prefix}/keep"),
            ]
        )
        outliers, rest = f"{prefix}/values", f"{prefix}/rest"
        added.append(
            helper.make_node("Gather", [activation, f"{prefix}/channels"], [outliers], axis=-1, name=outliers)
        )
        added.append(helper.make_node("Mul", [activation, f"{prefix}/keep"], [rest], name=rest))
        for matmul in matmuls:
            weight = numpy_helper.to_array(initializers[matmul.input[1]])
            outlier_rows = weight[channels, :]
            remaining = weight.copy()
            remaining[channels, :] = 0.0
            initializers[matmul.input[1]].CopyFrom(numpy_helper.from_array(remaining, matmul.input[1]))
            outlier_weight = f"{matmul.input[1]}/outlier_rows"
            graph.initializer.append(numpy_helper.from_array(outlier_rows, outlier_weight))

            output = matmul.output[0]
            matmul.input[0] = rest
            matmul.output[0] = f"{output}/rest"
            float_matmul = f"{matmul.name}/outliers"
            added.append(
                helper.make_node(
                    "MatMul", [outliers, outlier_weight], [f"{output}/outliers"], name=float_matmul
                )
            )
            added.append(
                helper.make_node(
                    "Add", [f"{output}/rest", f"{output}/outliers"], [output], name=f"{output}/joined"
                )
            )
            float_matmul_names.append(float_matmul)

    nodes = _topologically_sorted([*graph.node, *added], graph)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(split)
    return OutlierSplit(model=split, float_matmul_names=float_matmul_names, channels=channels_by_input)


def _topologically_sorted(nodes: list[onnx.NodeProto], graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    # ONNX requires producers before consumers; the added nodes were appended at the end.
    available = {value.name for value in graph.input} | {item.name for item in graph.initializer}
    producer_of = {output: index for index, node in enumerate(nodes) for output in node.output}
    waiting_on = [
        {name for name in node.input if name and name not in available and name in producer_of}
        for node in nodes
    ]
    dependants: dict[int, list[int]] = defaultdict(list)
    for index, names in enumerate(waiting_on):
        for name in names:
            dependants[producer_of[name]].append(index)
    remaining = [len(names) for names in waiting_on]
    ready = deque(index for index, count in enumerate(remaining) if count == 0)
    ordered: list[onnx.NodeProto] = []
    while ready:
        index = ready.popleft()
        ordered.append(nodes[index])
        for dependant in dependants[index]:
            remaining[dependant] -= 1
            if remaining[dependant] == 0:
                ready.append(dependant)
    if len(ordered) != len(nodes):
        raise ModelBuildError("int8: the graph has a cycle after the outlier split")
    return ordered
