# -*- coding: utf-8 -*-
# Copyright (c) codis.ha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Checks of the module's arguments that Ansible's type conversion does not make.

Ansible turns "nan" and "inf" into floats and accepts them; a NaN compares false with everything, so
`stale_margin: nan` silently disables the stale-slave rule and `verify_timeout: nan` never ends. Every number
must be finite and in a range an operator could mean, and every file named must be one the pass can use.
"""

from __future__ import annotations

import math
import os
import ssl
import stat
from typing import Any, Optional


def number_problem(name: str, value: Any, low: float, high: float, above_low: bool = False) -> Optional[str]:
    """Why `value` is not a usable `name`, or None (None values are for the caller to allow)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "%s must be a number, got %r" % (name, value)
    if not math.isfinite(value):
        return "%s must be a finite number, got %r" % (name, value)
    if (value <= low if above_low else value < low) or value > high:
        return "%s must be %s %s and at most %s, got %r" % (
            name, "greater than" if above_low else "at least", _number_text(low), _number_text(high), value)
    return None


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def regular_file_problem(name: str, path: Optional[str]) -> Optional[str]:
    """Why `path` is not a readable regular file, or None."""
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError as exc:
        return "%s %s cannot be used: %s" % (name, path, exc.strerror or exc)
    if not stat.S_ISREG(st.st_mode):
        return "%s %s is not a regular file" % (name, path)
    if not os.access(path, os.R_OK):
        return "%s %s is not readable" % (name, path)
    return None


def ca_file_problem(name: str, path: Optional[str]) -> Optional[str]:
    """Why `path` is not a CA bundle the TLS layer can load, or None."""
    problem = regular_file_problem(name, path)
    if problem or path is None:
        return problem
    try:
        ssl.create_default_context(cafile=path)
    except (ssl.SSLError, OSError, ValueError) as exc:
        return "%s %s holds no usable PEM certificate (%s)" % (name, path, exc)
    return None


def cert_pair_problem(cert_name: str, cert: Optional[str], key_name: str, key: Optional[str]) -> Optional[str]:
    problem = regular_file_problem(cert_name, cert) or regular_file_problem(key_name, key)
    if problem or cert is None or key is None:
        return problem
    try:
        ssl.create_default_context().load_cert_chain(cert, key, password=lambda: b"")  # never a prompt
    except (ssl.SSLError, OSError, ValueError) as exc:
        return "%s %s and %s %s are not a matching PEM certificate and key (%s)" % (
            cert_name, cert, key_name, key, exc)
    return None
