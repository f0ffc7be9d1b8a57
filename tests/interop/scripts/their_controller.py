"""Run with constellationdaq's python only: their ScriptableController drives one full run.

argv[1]: JSON {"group", "satellites": {canonical: config}, "run_id", "run_seconds"}.
Prints ``RESULT <json>`` with every reply (verb text, payload, tags) and the states seen.
"""

import json
import sys
import time

from constellation.core.controller import ScriptableController
from constellation.core.protocol.cscp1 import SatelliteState


def reply(resp):
    return {
        "success": resp.success,
        "msg": resp.msg,
        "payload": resp.payload
        if isinstance(resp.payload, (str, int, float, type(None)))
        else repr(resp.payload),
        "meta": sorted((resp.meta or {}).keys()),
        "errmsg": resp.errmsg,
    }


def main():
    args = json.loads(sys.argv[1])
    names = list(args["satellites"])
    out = {"replies": {}, "states": {}}
    ctrl = ScriptableController(
        args["group"], log_level="WARNING", name="TheirCtrl", interface=["lo"]
    )
    try:
        ctrl.await_satellites(names, timeout=20)
        out["found"] = sorted(ctrl.constellation.satellites)

        def each(cmd, payload=None):
            for canonical in names:
                sat_type, sat_name = canonical.split(".")
                p = args["satellites"][canonical] if cmd == "initialize" else payload
                resp = ctrl.command(cmd, p, sat_type, sat_name)
                out["replies"].setdefault(cmd, {})[canonical] = reply(resp)

        for canonical in names:
            sat_type, sat_name = canonical.split(".")
            for cmd in (
                "get_name",
                "get_state",
                "get_version",
                "get_commands",
                "get_role",
                "get_run_id",
            ):
                resp = ctrl.command(cmd, None, sat_type, sat_name)
                out["replies"].setdefault(cmd, {})[canonical] = reply(resp)

        steps = [
            ("initialize", None, SatelliteState.INIT),
            ("launch", None, SatelliteState.ORBIT),
            ("start", args["run_id"], SatelliteState.RUN),
            ("stop", None, SatelliteState.ORBIT),
            ("land", None, SatelliteState.INIT),
        ]
        for cmd, payload, target in steps:
            each(cmd, payload)
            ctrl.await_state(target, timeout=30)
            out["states"][cmd] = {k: v.name for k, v in ctrl.states.items()}
            if cmd == "start":
                time.sleep(args["run_seconds"])
        for canonical in names:
            sat_type, sat_name = canonical.split(".")
            resp = ctrl.command("get_run_id", None, sat_type, sat_name)
            out["replies"].setdefault("get_run_id_after", {})[canonical] = reply(resp)
    except Exception as exc:  # report, the test shows it
        out["error"] = repr(exc)
        out["states"]["at_error"] = {k: v.name for k, v in ctrl.states.items()}
    finally:
        print("RESULT " + json.dumps(out, default=str), flush=True)
        ctrl.terminate()


if __name__ == "__main__":
    main()
