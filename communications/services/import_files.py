"""Reading contact files (CSV, XLSX, JSON) safely, and writing cells that spreadsheets trust.

Every limit and every way a file can be unreadable ends in `ImportFileError` with a message
meant for the person who uploaded it. A file is read completely before anything is imported,
so a file that fails here imports nothing.
"""

import codecs
import contextlib
import csv
import io
import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

import charset_normalizer
from django.conf import settings

FORMATS = ("csv", "xlsx", "json")
CSV_DELIMITERS = (",", ";", "\t", "|")
MAX_COLUMNS = 200
MAX_ZIP_ENTRIES = 1000
XLSX_MAGIC = b"PK\x03\x04"


class ImportFileError(Exception):
    """The file as a whole cannot be imported; the message says why, for its uploader."""


@dataclass
class Table:
    """A file's header and its data rows as (line number, values aligned with the header)."""

    headers: list[str]
    rows: list[tuple[int, list[Any]]] = field(default_factory=list)
    encoding: str = ""


def limit(name: str) -> int:
    return int(getattr(settings, name))


def detect_format(filename: str, *, given: str = "") -> str:
    """The import format: the one given, else the file name's extension."""
    if given:
        if given not in FORMATS:
            raise ImportFileError(f"Unknown format {given!r}: use one of {', '.join(FORMATS)}.")
        return given
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if extension not in FORMATS:
        raise ImportFileError(
            f"Cannot tell the format of {filename!r}: name it .csv, .xlsx or .json, "
            "or give the format."
        )
    return extension


def read_table(data: bytes, *, format: str) -> Table:
    """Parse the whole file; raises ImportFileError when it is too big, unreadable or unsafe."""
    max_bytes = limit("CONTACT_IMPORT_MAX_BYTES")
    if len(data) > max_bytes:
        raise ImportFileError(f"The file is {len(data):,} bytes; the limit is {max_bytes:,} bytes.")
    if not data.strip():
        raise ImportFileError("The file is empty.")
    readers = {"csv": read_csv, "xlsx": read_xlsx, "json": read_json}
    if format not in readers:
        raise ImportFileError(f"Unknown format {format!r}: use one of {', '.join(FORMATS)}.")
    table = readers[format](data)
    check_headers(table.headers)
    return table


def check_headers(headers: list[str]) -> None:
    if not any(headers):
        raise ImportFileError("The file has no header row naming its columns.")
    if len(headers) > MAX_COLUMNS:
        raise ImportFileError(f"The file has {len(headers)} columns; at most {MAX_COLUMNS}.")
    seen: set[str] = set()
    for header in headers:
        if header and header.casefold() in seen:
            raise ImportFileError(f"The column {header!r} appears twice in the header.")
        seen.add(header.casefold())


def count_row(count: int) -> int:
    """The running row count, refused past CONTACT_IMPORT_MAX_ROWS."""
    max_rows = limit("CONTACT_IMPORT_MAX_ROWS")
    if count > max_rows:
        raise ImportFileError(
            f"The file has more than {max_rows:,} rows, the most one import takes."
        )
    return count


# --- Text ---------------------------------------------------------------------------------------


def decode_text(data: bytes) -> tuple[str, str]:
    """(text, encoding): UTF-8 with or without BOM, UTF-16 with BOM, else a detected encoding."""
    if data.startswith(codecs.BOM_UTF8):
        return _decode(data[len(codecs.BOM_UTF8) :], "utf-8"), "utf-8-sig"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _decode(data, "utf-16"), "utf-16"
    if b"\x00" in data[:4096]:
        raise ImportFileError("This is not a text file (it contains NUL bytes).")
    with contextlib.suppress(UnicodeDecodeError):
        return data.decode("utf-8"), "utf-8"
    guess = charset_normalizer.from_bytes(data).best()
    if guess is None or guess.encoding in ("utf_8", "ascii"):
        raise ImportFileError(
            "The file is not UTF-8 text and its encoding could not be recognised: "
            "save it as UTF-8 (CSV UTF-8 in Excel) and upload it again."
        )
    return _decode(data, guess.encoding), guess.encoding


def _decode(data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        raise ImportFileError(
            f"The file is not valid {encoding} text (byte {error.start:,}): save it as UTF-8."
        ) from error


# --- CSV ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def field_size_limit(size: int) -> Iterator[None]:
    previous = csv.field_size_limit(size)
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def sniff_delimiter(text: str) -> str:
    first_line = text.split("\n", 1)[0]
    counts = {delimiter: first_line.count(delimiter) for delimiter in CSV_DELIMITERS}
    best = max(counts, key=lambda delimiter: counts[delimiter])
    return best if counts[best] else ","


def read_csv(data: bytes) -> Table:
    text, encoding = decode_text(data)
    max_chars = limit("CONTACT_IMPORT_MAX_FIELD_CHARS")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sniff_delimiter(text), strict=True)
    table: Table | None = None
    line = 1
    with field_size_limit(max_chars):
        try:
            for values in reader:
                if any(value.strip() for value in values):
                    if table is None:
                        table = Table([value.strip() for value in values], encoding=encoding)
                    else:
                        table.rows.append((line, values))
                        count_row(len(table.rows))
                line = reader.line_num + 1
        except csv.Error as error:
            if "field larger than field limit" in str(error):
                raise ImportFileError(
                    f"Line {line}: a value is longer than {max_chars:,} characters."
                ) from error
            raise ImportFileError(f"Line {line}: the CSV is malformed ({error}).") from error
    if table is None:
        raise ImportFileError("The file has no header row naming its columns.")
    return table


# --- XLSX ---------------------------------------------------------------------------------------


def check_zip(data: bytes) -> None:
    """Refuse a workbook whose declared contents are too big or too compressed (a zip bomb).

    Python's zipfile never inflates an entry past its declared size, so checking the
    declared sizes before openpyxl reads anything bounds what reading can cost.
    """
    if not data.startswith(XLSX_MAGIC):
        raise ImportFileError("This is not an XLSX workbook (not a zip archive).")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError) as error:
        raise ImportFileError(f"This is not a readable XLSX workbook ({error}).") from error
    entries = archive.infolist()
    if len(entries) > MAX_ZIP_ENTRIES:
        raise ImportFileError(
            f"The workbook holds {len(entries):,} parts; at most {MAX_ZIP_ENTRIES:,}."
        )
    if "xl/workbook.xml" not in archive.namelist():
        raise ImportFileError("This zip archive is not an XLSX workbook (no xl/workbook.xml).")
    max_total = limit("CONTACT_IMPORT_XLSX_MAX_UNCOMPRESSED_BYTES")
    max_ratio = limit("CONTACT_IMPORT_XLSX_MAX_RATIO")
    total = sum(entry.file_size for entry in entries)
    if total > max_total:
        raise ImportFileError(
            f"The workbook expands to {total:,} bytes; the limit is {max_total:,} bytes."
        )
    for entry in entries:
        if entry.flag_bits & 0x1:
            raise ImportFileError("The workbook is encrypted: save it without a password.")
        ratio = entry.file_size / max(entry.compress_size, 1)
        if entry.file_size > 1_000_000 and ratio > max_ratio:
            raise ImportFileError(
                f"The workbook part {entry.filename} is compressed {ratio:,.0f} to 1 "
                f"(at most {max_ratio} to 1 is accepted): it looks like a zip bomb."
            )


def cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value)


def read_xlsx(data: bytes) -> Table:
    check_zip(data)
    from openpyxl import load_workbook

    max_chars = limit("CONTACT_IMPORT_MAX_FIELD_CHARS")
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        try:
            return _read_sheet(workbook.worksheets[0], max_chars)
        finally:
            workbook.close()
    except ImportFileError:
        raise
    except Exception as error:  # openpyxl raises many types for a damaged workbook
        raise ImportFileError(
            f"The XLSX workbook could not be read ({type(error).__name__}: {error})."
        ) from error


def _read_sheet(sheet: Any, max_chars: int) -> Table:
    table: Table | None = None
    for line, cells in enumerate(sheet.iter_rows(values_only=True), start=1):
        values = [cell_text(value) for value in cells]
        if not any(value.strip() for value in values):
            continue
        if any(len(value) > max_chars for value in values):
            raise ImportFileError(f"Line {line}: a value is longer than {max_chars:,} characters.")
        if table is None:
            table = Table([value.strip() for value in values], encoding="xlsx")
        else:
            table.rows.append((line, values))
            count_row(len(table.rows))
    if table is None:
        raise ImportFileError("The first sheet has no header row naming its columns.")
    while table.headers and not table.headers[-1]:
        table.headers.pop()
    return table


# --- JSON ---------------------------------------------------------------------------------------


def read_json(data: bytes) -> Table:
    """A list of objects (or {"contacts": [...]}); nested objects become `key.subkey` columns."""
    text, encoding = decode_text(data)
    try:
        document = json.loads(text)
    except RecursionError as error:
        raise ImportFileError("The JSON is nested too deeply.") from error
    except ValueError as error:
        raise ImportFileError(f"The file is not valid JSON ({error}).") from error
    if isinstance(document, dict) and isinstance(document.get("contacts"), list):
        document = document["contacts"]
    if not isinstance(document, list):
        raise ImportFileError('The JSON must be a list of contact objects, or {"contacts": [...]}.')
    count_row(len(document))
    items = [_flatten(item) if isinstance(item, dict) else item for item in document]
    headers: dict[str, None] = {}
    for item in items:
        if isinstance(item, dict):
            headers.update(dict.fromkeys(item))
            if len(headers) > MAX_COLUMNS:
                raise ImportFileError(f"The objects have more than {MAX_COLUMNS} distinct keys.")
    names = list(headers)
    max_chars = limit("CONTACT_IMPORT_MAX_FIELD_CHARS")
    table = Table(names, encoding=encoding)
    for line, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            table.rows.append((line, [_NotAnObject(item)]))
            continue
        values = [item.get(name, "") for name in names]
        if any(len(str(value)) > max_chars for value in values):
            raise ImportFileError(f"Item {line}: a value is longer than {max_chars:,} characters.")
        table.rows.append((line, values))
    return table


class _NotAnObject:
    """A JSON list item that is not an object: reported as an invalid row."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __str__(self) -> str:
        return json.dumps(self.value)[:200]


def is_not_an_object(values: list[Any]) -> bool:
    return len(values) == 1 and isinstance(values[0], _NotAnObject)


def _flatten(item: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in item.items():
        if isinstance(value, dict):
            for subkey, subvalue in value.items():
                flat[f"{key}.{subkey}"] = _json_value(subvalue)
        else:
            flat[str(key)] = _json_value(value)
    return flat


def _json_value(value: Any) -> Any:
    if isinstance(value, list):
        return [cell_text(item) for item in value]
    if isinstance(value, dict):
        return json.dumps(value)
    return cell_text(value)


# --- Writing cells ------------------------------------------------------------------------------

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


def escape_formula(value: Any) -> Any:
    """A cell a spreadsheet will show as text, not run: `=`, `+`, `-`, `@`, tab, CR get a `'`.

    Plain numbers such as an E.164 phone number (`+14155550123`) or `-5` cannot be formulas
    and stay as they are.
    """
    if not isinstance(value, str) or not value.startswith(FORMULA_STARTS):
        return value
    if PLAIN_NUMBER.fullmatch(value):
        return value
    return "'" + value
