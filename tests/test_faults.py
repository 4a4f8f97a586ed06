"""Errors by kind (runner/run/faults.py), from each framework's real exception types and messages."""

import pytest

from runner.run.faults import classify_error


def test_pytorch_out_of_memory_and_device_faults():
    torch = pytest.importorskip("torch")
    oom = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.2 "
                                      "GiB total capacity; 77.1 GiB already allocated)")
    assert classify_error(oom) == "out_of_memory"
    assert classify_error(RuntimeError("CUDA error: out of memory")) == "out_of_memory"
    illegal = torch.AcceleratorError("CUDA error: an illegal memory access was encountered\nCUDA "
                                     "kernel errors might be asynchronously reported")
    assert classify_error(illegal) == "device_fault"
    ecc = RuntimeError("CUDA error: uncorrectable ECC error encountered")
    assert classify_error(ecc) == "device_fault"
    # a device-side assert is the model's bug (an index out of range), not the GPU's
    assert classify_error(RuntimeError("CUDA error: device-side assert triggered")) == "model_error"
    assert classify_error(RuntimeError("mat1 and mat2 shapes cannot be multiplied")) == "model_error"


def test_tensorflow_resource_exhausted_and_internal_cuda_errors():
    tf = pytest.importorskip("tensorflow")
    oom = tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape"
                                           "[64,112,112,96] and type float on /GPU:0")
    assert classify_error(oom) == "out_of_memory"
    fault = tf.errors.InternalError(None, None, "Failed to launch kernel: CUDA_ERROR_ILLEGAL_ADDRESS: "
                                    "an illegal memory access was encountered")
    assert classify_error(fault) == "device_fault"
    assert classify_error(tf.errors.InvalidArgumentError(None, None, "Incompatible shapes")) == "model_error"


def test_jax_resource_exhausted_and_xla_cuda_errors():
    jax = pytest.importorskip("jax")
    try:  # the real error: more memory than this machine has
        jax.numpy.ones((10**7, 10**6), dtype="float32").block_until_ready()
    except jax.errors.JaxRuntimeError as exc:
        assert "RESOURCE_EXHAUSTED" in str(exc)
        assert classify_error(exc) == "out_of_memory"
    else:
        pytest.fail("a 40 TB array was allocated")
    fault = jax.errors.JaxRuntimeError("INTERNAL: CUDA error: Could not synchronize CUDA stream: "
                                       "CUDA_ERROR_ILLEGAL_ADDRESS: an illegal memory access was encountered")
    assert classify_error(fault) == "device_fault"
    lost = jax.errors.JaxRuntimeError("INTERNAL: Unable to launch kernel: GPU is lost (Xid 79)")
    assert classify_error(lost) == "device_fault"
    assert classify_error(jax.errors.JaxRuntimeError("INVALID_ARGUMENT: bad shape")) == "model_error"
