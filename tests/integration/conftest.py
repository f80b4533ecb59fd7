"""pytest hooks shared by the integration tests."""
import pytest

import harness


@pytest.fixture(autouse=True)
def no_eddy_left_running():
    """A failed test may leave its `eddy run` processes behind: kill them."""
    yield
    harness.kill_leftovers()
