"""Reference lists of a national campaign, for the benchmarks (issue 11).

After the 2025 reform a national campaign has ~3,300 commune-level senders; the benches
measure 700 of them, each sending a 150-row list (105,000 rows). This writes the three
CSVs that ``intake.reference.load_reference`` reads (the same columns as
``config/reference/``): every unit with its communes, the first of them titled (NTM, so
the coverage sheet and its check have work to do), and every commune's hamlets with
their party cells, each eligible for the campaign year (recognised since 2018 or
registering this year), so ``samples.eligible_rows(…, limit=150)`` fills a whole list.

Units are named "Huyện đoàn …" because that is how the form's heading names a unit and
how the reader finds it again (``sheets.report``); names, e-mail addresses and commune
codes are unique, hamlet names repeat from commune to commune as they do in life.
"""

from __future__ import annotations

import csv
from pathlib import Path

PLACES = ["An Bình", "Tân Thạch", "Phú Hưng", "Mỹ Thạnh", "Hòa Lộc", "Long Thới", "Thạnh Phú",
          "Bình Đông", "Hưng Khánh", "Sơn Định", "Quới Điền", "Vĩnh Thành", "Lương Hòa",
          "Tam Hiệp", "Giao Long", "Phước Long", "Thới Lai", "Định Trung", "An Ngãi",
          "Châu Hòa"]


def write_reference(folder: Path, units: int = 700, communes: int = 3, hamlets: int = 50,
                    year: int = 2021) -> Path:
    """Write units.csv, communes.csv and party_cells.csv into ``folder``; return it."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "units.csv").open("w", encoding="utf-8", newline="") as u_file, \
            (folder / "communes.csv").open("w", encoding="utf-8", newline="") as c_file, \
            (folder / "party_cells.csv").open("w", encoding="utf-8", newline="") as p_file:
        unit_rows, commune_rows, cell_rows = csv.writer(u_file), csv.writer(c_file), \
            csv.writer(p_file)
        unit_rows.writerow(["unit_code", "unit_name", "district_name", "emails"])
        commune_rows.writerow(["unit_code", "commune_code", "commune_name", "title"])
        cell_rows.writerow(["unit_code", "commune_code", "commune_name", "hamlet_name",
                            "party_cell_name", "recognised_year", "registered_year"])
        for number in range(1, units + 1):
            code, place = f"N{number:04d}", f"{PLACES[number % len(PLACES)]} {number}"
            unit_rows.writerow([code, f"Huyện đoàn {place}", f"Huyện {place}",
                                f"doan{number:04d}@example.org"])
            for index in range(communes):
                commune_code = f"{number:04d}{index}"
                ward = index == communes - 1  # a ward (phường) has quarters, a commune hamlets
                commune = (f"Phường {index + 1}" if ward
                           else f"Xã {PLACES[(number + 7 * index + 3) % len(PLACES)]}")
                commune_rows.writerow([code, commune_code, commune, "NTM" if index == 0 else ""])
                for hamlet in range(1, hamlets + 1):
                    name = f"Khu phố {hamlet}" if ward else f"Ấp {hamlet}"
                    recognised = hamlet % 3 == 0
                    cell_rows.writerow([code, commune_code, commune, name,
                                        f"Chi bộ {name[0].lower()}{name[1:]}",
                                        2019 if recognised else "",
                                        "" if recognised else year])
    return folder
