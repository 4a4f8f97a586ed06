"""The devices a run excludes after faults, without Ray: exclusion, bounded retries, the file and
the summary lines."""

from runner.run.devices import DeviceLog, read_devices
from runner.run.faults import PairError

FAULT = PairError("device_fault", "AcceleratorError: CUDA error: an illegal memory access was "
                  "encountered", node_id="a" * 56, hostname="gpu-node-3", gpu_ids=("1",))


def test_a_fault_excludes_its_gpu_and_retries_are_bounded(tmp_path):
    log = DeviceLog(tmp_path, "run0", max_retries=2)
    assert [log.fault("pytorch/resnet50", FAULT) for _ in range(3)] == [1, 2, None]
    assert log.excluded == {("a" * 56, "1")}
    assert log.fault("pytorch/vgg16", FAULT) == 1  # per pair
    entries = read_devices(tmp_path)
    assert len(entries) == 4 and entries[0].gpu_ids == ["1"] and entries[0].device == "GPU 1 of gpu-node-3"
    assert log.summary()[0] == ("excluded GPU 1 of gpu-node-3 (node aaaaaaaaaaaa): AcceleratorError: CUDA "
                                "error: an illegal memory access was encountered; pytorch/resnet50 "
                                "restarted away from it")


def test_a_fault_without_gpus_excludes_the_node_and_a_lost_node_is_listed(tmp_path):
    log = DeviceLog(tmp_path, "run0", max_retries=0)
    assert log.fault("keras/mobilenet", PairError("device_fault", "lost", node_id="n1")) is None
    assert log.excluded == {("n1", None)}
    log.node_lost("n2" * 20, "10.0.0.7")
    assert log.summary()[1] == "lost node 10.0.0.7 (n2n2n2n2n2n2): its pairs resumed on the remaining nodes"
    assert [e.error for e in read_devices(tmp_path)] == ["lost", "node lost"]
    assert DeviceLog(tmp_path, "run1", 2).fault("keras/mobilenet", FAULT) == 1
    assert len(read_devices(tmp_path)) == 3  # a later run adds to the file
