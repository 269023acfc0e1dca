// Numbers, sizes, times and durations as people read them.

const integer = new Intl.NumberFormat("en");

export function count(n) {
  return integer.format(n ?? 0);
}

export function plural(n, one, many = `${one}s`) {
  return `${count(n)} ${n === 1 ? one : many}`;
}

export function percent(value) {
  return `${(value ?? 0).toFixed(1)}%`;
}

export function bytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["bytes", "kB", "MB", "GB", "TB"];
  let value = n;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return unit === 0 ? `${count(n)} bytes` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

// 75 → "1:15", 3725 → "1:02:05"
export function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${rest}` : `${minutes}:${rest}`;
}

export function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return date.toLocaleString("en-GB", {
    year: "numeric",
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });
}

export function seconds(fromIso, toIso) {
  return (new Date(toIso).getTime() - new Date(fromIso).getTime()) / 1000;
}

export function shortId(id) {
  return id.slice(-8);
}
