"""A SWMR run file written step by step in its own process (the tests' growing file).

Usage: ``python -m tests.service.grow_writer DIR RUN_ID``; reads commands from stdin, one a
line: ``write N`` (N records of each sender, flushed), ``eor``, ``close``; answers ``ok <n>``
with the records written so far after each, so the test knows what is on disk.
"""

from __future__ import annotations

import sys
from pathlib import Path

from satellites.h5datawriter.runfile import RunFile
from tests.service.support import TX, TX2, WRITER, eor_meta, records


def main() -> None:
    directory, run_id = Path(sys.argv[1]), sys.argv[2]
    run = RunFile.create(directory, run_id, WRITER, swmr=True, expected_senders=[TX, TX2])
    for sender in (TX, TX2):
        run.begin_sender(sender, {"operator": "grow"}, {"rate": 1})
    written = 0
    print("ok 0", flush=True)
    for line in sys.stdin:
        command = line.split()
        if not command:
            continue
        if command[0] == "write":
            count = int(command[1])
            for sender in (TX, TX2):
                run.write_records(sender, records(written + 1, count))
            written += count
            run.flush()
        elif command[0] == "eor":
            for sender in (TX, TX2):
                run.end_sender(sender, {}, eor_meta(run_id, written))
            run.flush()
        elif command[0] == "close":
            run.close()
            print(f"ok {written}", flush=True)
            return
        print(f"ok {written}", flush=True)


if __name__ == "__main__":
    main()
