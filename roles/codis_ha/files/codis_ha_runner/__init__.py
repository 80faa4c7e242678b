# -*- coding: utf-8 -*-
# Copyright (c) codis.ha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Runs codis.ha.codis_ha passes on a schedule, without an `ansible` process per pass.

Installed by the codis.ha.codis_ha role beside the collection and run as `python -m codis_ha_runner`. It reads
one JSON file (mode 0600: it holds the passwords), so no secret reaches a command line or a temporary file. The
arguments are checked by Ansible's own validator against the module's spec and the pass is the module's
(`_front.pass_without_ansible`): the same checks, the same result, no secret in it.

    python -m codis_ha_runner CONFIG                 one pass
    python -m codis_ha_runner CONFIG --loop-minute   passes every interval until the minute ends (cron, flock -n)
    python -m codis_ha_runner CONFIG --loop-seconds N   passes every interval for N seconds (the systemd service)
    python -m codis_ha_runner CONFIG --check         one pass in check mode, its message printed (the role's check)

The parts: `config` (the file, checked, as a frozen RunnerConfig), `worker` (where a pass runs: a worker forked
once after the imports, or a new interpreter), `outputs` (the log, the node_exporter textfile, the failover
counter and the per-group states), `hooks` (the command run after a change), `cli` (the loop).
"""
