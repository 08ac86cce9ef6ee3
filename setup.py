"""Builds the C decoding extension; all other metadata lives in pyproject.toml.

The extension is optional: on a board without a C compiler the build prints
one warning and the package installs without it (the runtime then decodes
with the numpy reference, see ``edgeseg.decode.active_path``).
Floating-point contraction is off and fast-math is never used, so the C path
matches the numpy reference bit for bit.
"""

from __future__ import annotations

import sys

import numpy
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

SOURCES = [f"edgeseg/_c/{name}.c" for name in ("es_detect", "es_render", "es_masks", "es_rle", "es_grasp", "es_pose",
                                                "es_runs", "_cdecode_module", "_cpost_module", "es_kernel",
                                                "es_matrix_nms", "_ckernel_module")]
GCC_FLAGS = ["-std=c99", "-O3", "-ffp-contract=off", "-fno-fast-math", "-fno-strict-aliasing", "-pthread"]


class OptionalBuildExt(build_ext):
    """Compiles with exact-float flags; a failed compile warns instead of failing the install."""

    def build_extensions(self) -> None:
        if self.compiler.compiler_type != "msvc":
            for ext in self.extensions:
                ext.extra_compile_args = GCC_FLAGS + ext.extra_compile_args
                ext.extra_link_args = ["-pthread", *ext.extra_link_args]
        else:
            for ext in self.extensions:
                ext.extra_compile_args = ["/fp:precise", *ext.extra_compile_args]
                ext.define_macros.append(("ES_NO_THREADS", "1"))
        super().build_extensions()

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any compiler failure means "no C path"
            print(f"WARNING: edgeseg C decoder not built ({exc}); the numpy reference will be used", file=sys.stderr)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            print(f"WARNING: could not build {ext.name} ({exc}); the numpy reference will be used", file=sys.stderr)


setup(
    ext_modules=[
        Extension(
            "edgeseg._c._cdecode",
            sources=SOURCES,
            include_dirs=[numpy.get_include(), "edgeseg/_c"],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            depends=["edgeseg/_c/es_decode.h", "edgeseg/_c/es_render.h", "edgeseg/_c/es_post.h", "edgeseg/_c/es_pose.h",
                     "edgeseg/_c/es_runs.h", "edgeseg/_c/_cbinding.h", "edgeseg/_c/es_kernel.h"],
        )
    ],
    cmdclass={"build_ext": OptionalBuildExt},
)
