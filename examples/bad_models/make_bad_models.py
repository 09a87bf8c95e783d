"""Small .tflite files accel must reject with a clear message (committed; regenerate with
/opt/tfenv/bin/python make_bad_models.py, TensorFlow as an optional extra):

- avgpool_int8.tflite: fully int8, but with AVERAGE_POOL_2D, which accel does not support;
- float32.tflite: a float model (not quantized).
"""

from pathlib import Path

import numpy as np
import tensorflow as tf

HERE = Path(__file__).resolve().parent


def convert(model, int8: bool) -> bytes:
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        rng = np.random.default_rng(0)

        def rep():
            for _ in range(16):
                yield [rng.uniform(0, 1, (1, 6, 6, 1)).astype(np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = rep
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


def main() -> None:
    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential([
        tf.keras.Input((6, 6, 1), batch_size=1),
        tf.keras.layers.Conv2D(2, 3, activation="relu"),
        tf.keras.layers.AveragePooling2D(2),
    ])
    (HERE / "avgpool_int8.tflite").write_bytes(convert(model, int8=True))
    (HERE / "float32.tflite").write_bytes(convert(model, int8=False))


if __name__ == "__main__":
    main()
