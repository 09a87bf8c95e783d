"""The loading boundary: every file accel reads comes in through one module of this package.

One module per format (:mod:`.files` for the common checks, :mod:`.documents` for YAML/JSON,
:mod:`.npy` and :mod:`.npz` for NumPy files, :mod:`.hdf5` for Keras ``.h5`` files,
:mod:`.flatbuffer` for ``.tflite``). Each one checks before it reads: a regular file (never a
FIFO or a device), a size the format can need, headers and structure before any payload, and
every failure of the underlying parser turned into one :class:`~accel.errors.AccelError` line
naming the file, the place inside it and the (shortened) value.
"""
