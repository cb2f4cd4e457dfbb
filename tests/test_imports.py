"""vad.imports: the static import closure that fingerprints a method's code and checks dvc.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

from vad.imports import (
    closure_files,
    module_closure,
    module_file,
    package_closure,
    script_closure,
)


@pytest.fixture
def package(tmp_path: Path) -> Path:
    """A fake `vad` package: a, b (lazy import inside a function), sub/c (relative imports),
    d (only imported under TYPE_CHECKING), e (imported by nobody), cycle x <-> y."""
    root = tmp_path / "vad"
    files = {
        "__init__.py": "",
        "a.py": "import vad.b\nfrom vad.sub import c\n",
        "b.py": "def f():\n    from vad import x\n    return x\n",
        "sub/__init__.py": "",
        "sub/c.py": (
            "from __future__ import annotations\nfrom typing import TYPE_CHECKING\n"
            "from . import helper\nfrom ..e_missing_name import nothing\n"
            "if TYPE_CHECKING:\n    from vad import d\nelse:\n    import vad.y\n"
        ),
        "sub/helper.py": "import numpy\n",
        "d.py": "",
        "e.py": "",
        "x.py": "import vad.y\n",
        "y.py": "import vad.x\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_closure_follows_lazy_relative_and_parent_imports(package: Path) -> None:
    closure = module_closure("vad.a", package)
    assert closure == {
        "vad",
        "vad.a",
        "vad.b",
        "vad.sub",
        "vad.sub.c",
        "vad.sub.helper",
        "vad.x",
        "vad.y",
    }
    assert "vad.d" not in closure  # type hints only
    assert "vad.e" not in closure  # imported by nobody


def test_closure_of_a_nested_module_includes_its_packages(package: Path) -> None:
    assert {"vad", "vad.sub"} <= module_closure("vad.sub.helper", package)
    assert module_closure("vad.sub.helper", package) == {"vad", "vad.sub", "vad.sub.helper"}


def test_files_and_scripts(package: Path, tmp_path: Path) -> None:
    files = closure_files("vad.sub", package)
    assert files == sorted(
        [package / "__init__.py", package / "x.py", package / "y.py"]
        + [package / "sub" / name for name in ("__init__.py", "c.py", "helper.py")]
    )
    assert package_closure("vad.sub", package) == {
        "vad",
        "vad.sub",
        "vad.sub.c",
        "vad.sub.helper",
        "vad.x",
        "vad.y",
    }
    with pytest.raises(ModuleNotFoundError, match="not a package"):
        package_closure("vad.x", package)
    script = tmp_path / "stage.py"
    script.write_text("import argparse\nfrom vad.sub.helper import numpy\n")
    assert script_closure(script, package) == {"vad", "vad.sub", "vad.sub.helper"}
    assert module_file("vad.sub", package) == package / "sub" / "__init__.py"
    assert module_file("numpy", package) is None
    with pytest.raises(ModuleNotFoundError, match="vad.nothing"):
        module_closure("vad.nothing", package)


def test_the_real_gmfc_vae_closure_is_what_it_imports() -> None:
    """Spot checks on the project itself: GMFC-VAE runs the shared training toolkit and frame
    differences, and none of the baseline's, the flow's or the evaluation's code."""
    names = package_closure("vad.methods.gmfc_vae")
    assert {"vad.training", "vad.motion.frame_difference", "vad.methods.gmfc_vae.model"} <= names
    assert not names & {"vad.methods.baseline", "vad.motion.flow", "vad.eval", "vad.report"}
    assert "vad.methods.registry" not in names  # adding a method does not re-run this one
