"""The portability check (tools/portability.py) really perturbs the notebook kernels."""

import pytest

from tools import portability


@pytest.mark.parametrize(("capability", "threads"), [("default", 3), ("avx2", 1)])
def test_the_kernel_reports_the_perturbed_vector_unit_and_threads(tmp_path, capability, threads):
    startup = tmp_path / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-threads.py").write_text(portability.STARTUP)
    env = {"ATEN_CPU_CAPABILITY": capability, "IPYTHONDIR": str(tmp_path / "ipython"),
           "COURSE_PORTABILITY_THREADS": str(threads)}
    # The probe itself asks for 1 thread, as lessons do: the pinned count must win.
    assert portability.kernel_reports(env) == (capability.upper(), threads)


def test_every_perturbation_changes_the_vector_unit_or_the_threads():
    changed = [extra.get("ATEN_CPU_CAPABILITY") or threads != 2
               for _, extra, threads in portability.PERTURBATIONS]
    assert all(changed)
    assert {threads for _, _, threads in portability.PERTURBATIONS} >= {1, 4}
    assert {"default", "avx2"} <= {extra.get("ATEN_CPU_CAPABILITY")
                                   for _, extra, _ in portability.PERTURBATIONS}


def test_failures_are_read_from_the_junit_report(tmp_path):
    junit = tmp_path / "junit.xml"
    junit.write_text(
        '<testsuites><testsuite>'
        '<testcase classname="notebooks.03_softmax_row_proof.ipynb" name="Cell 15">'
        '<failure message="mismatch"/></testcase>'
        '<testcase classname="notebooks.03_softmax_row_proof.ipynb" name="Cell 16"/>'
        '</testsuite></testsuites>')
    assert portability.failures(junit) == ["notebooks.03_softmax_row_proof.ipynb::Cell 15"]
