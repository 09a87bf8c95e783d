"""Record Keras's own summary numbers for every example, as the reference the tests check.

Needs TensorFlow/Keras (an optional extra, not a dependency of accel); run it in a separate
environment::

    python3 -m venv /opt/tfenv && /opt/tfenv/bin/pip install tensorflow-cpu pyyaml
    /opt/tfenv/bin/python examples/keras_reference.py

Because spec files use Keras class and argument names, each spec is built literally as
``keras.layers.<Class>(**args)``. Output: ``examples/keras_summaries.json``, keyed by the spec's
file stem or the model file's stem, with each layer's name, class, output shape (no batch
dimension) and ``count_params()`` as Keras reports them.
"""

import json
from pathlib import Path

import keras
import yaml

HERE = Path(__file__).resolve().parent


def describe(model) -> list[dict]:
    return [
        {"name": layer.name, "type": type(layer).__name__,
         "output_shape": list(layer.output.shape[1:]), "params": layer.count_params()}
        for layer in model.layers
        if not isinstance(layer, keras.layers.InputLayer)  # functional models list it
    ]


def from_spec(path: Path):
    """A Sequential model for a chain spec; a functional model when a layer names its
    ``inputs`` (layer names, ``input`` for the model input; default the previous layer)."""
    keras.backend.clear_session()  # restart Keras's name counters: conv2d, conv2d_1, ...
    doc = yaml.safe_load(path.read_text())
    entries = [next(iter(entry.items())) for entry in doc["layers"]]
    name = doc.get("name", path.stem)
    if not any("inputs" in (args or {}) for _, args in entries):
        layers = [keras.Input(shape=tuple(doc["input"]))]
        for cls, args in entries:
            layers.append(getattr(keras.layers, cls)(**(args or {})))
        return keras.Sequential(layers, name=name)
    model_input = keras.Input(shape=tuple(doc["input"]))
    tensors = {"input": model_input}
    x = model_input
    for cls, args in entries:
        args = dict(args or {})
        inputs = args.pop("inputs", None)
        layer = getattr(keras.layers, cls)(**args)
        if inputs is None:
            x = layer(x)
        elif cls in ("Add", "Concatenate"):
            x = layer([tensors[n] for n in inputs])
        else:
            (only,) = inputs
            x = layer(tensors[only])
        tensors[layer.name] = x
    return keras.Model(model_input, x, name=name)


def main() -> None:
    out = {}
    for path in sorted((HERE / "specs").glob("*")):
        if path.suffix in (".yaml", ".yml", ".json"):
            out[path.stem] = describe(from_spec(path))
    for path in sorted((HERE / "digits").glob("*.keras")):
        keras.backend.clear_session()
        out[path.stem] = describe(keras.saving.load_model(path))
    out["_versions"] = {"keras": keras.__version__}  # every entry is now Keras's own
    (HERE / "keras_summaries.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {HERE / 'keras_summaries.json'} ({len(out) - 1} models)")


if __name__ == "__main__":
    main()
