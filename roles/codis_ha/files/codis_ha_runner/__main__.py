# -*- coding: utf-8 -*-
# Copyright (c) codis.ha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""`python -m codis_ha_runner CONFIG [--loop-minute | --loop-seconds N | --check]`."""

import sys

from codis_ha_runner.cli import main

sys.exit(main())
