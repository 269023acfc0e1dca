// Reading CSV (RFC 4180) as the service writes it: quoted fields, doubled quotes, CRLF.

// The records of `text`; unless `complete`, a last record with no line end yet is left out.
export function parseCsv(text, complete = true) {
  const records = [];
  let record = [];
  let field = "";
  let quoted = false;
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
      } else {
        field += c;
      }
      i += 1;
      continue;
    }
    if (c === '"') {
      quoted = true;
    } else if (c === ",") {
      record.push(field);
      field = "";
    } else if (c === "\r" || c === "\n") {
      record.push(field);
      records.push(record);
      record = [];
      field = "";
      if (c === "\r" && text[i + 1] === "\n") i += 1;
    } else {
      field += c;
    }
    i += 1;
  }
  if (complete && (field !== "" || record.length)) {
    record.push(field);
    records.push(record);
  }
  return records;
}
