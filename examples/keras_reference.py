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
    ]


def from_spec(path: Path):
    keras.backend.clear_session()  # restart Keras's name counters: conv2d, conv2d_1, ...
    doc = yaml.safe_load(path.read_text())
    layers = [keras.Input(shape=tuple(doc["input"]))]
    for entry in doc["layers"]:
        ((cls, args),) = entry.items()
        layers.append(getattr(keras.layers, cls)(**(args or {})))
    return keras.Sequential(layers, name=doc.get("name", path.stem))


def main() -> None:
    out = {}
    for path in sorted((HERE / "specs").glob("*")):
        if path.suffix in (".yaml", ".yml", ".json"):
            out[path.stem] = describe(from_spec(path))
    for path in sorted((HERE / "digits").glob("*.keras")):
        keras.backend.clear_session()
        out[path.stem] = describe(keras.saving.load_model(path))
    out["_versions"] = {"keras": keras.__version__}
    (HERE / "keras_summaries.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {HERE / 'keras_summaries.json'} ({len(out) - 1} models)")


if __name__ == "__main__":
    main()
