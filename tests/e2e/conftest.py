"""Session fixtures for ctiport's end-to-end tests; helpers live in e2e_util.py."""
from __future__ import annotations

import pytest

from e2e_util import (ADVERSARIAL, EXIT_PARTIAL, MALFORMED, SAMPLES, SAMPLES_EXPECTED, Export,
                      export, load_json)


@pytest.fixture(scope="session")
def samples_expected() -> dict:
    return load_json(SAMPLES_EXPECTED)


@pytest.fixture(scope="session")
def samples_export(tmp_path_factory) -> Export:
    """One default export of samples/mdti, shared by the tests that only read it."""
    return export(SAMPLES, tmp_path_factory.mktemp("samples-default"), expect_exit=EXIT_PARTIAL)


@pytest.fixture(scope="session")
def adversarial_expected() -> dict:
    return load_json(ADVERSARIAL / "EXPECTED.json")


@pytest.fixture(scope="session")
def malformed_expected() -> dict:
    return load_json(MALFORMED / "EXPECTED.json")
