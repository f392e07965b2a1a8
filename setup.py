"""Build glue: the native helper is compiled through cffi (API mode) at install time."""

from setuptools import setup

setup(cffi_modules=["native/build_native.py:ffibuilder"])
