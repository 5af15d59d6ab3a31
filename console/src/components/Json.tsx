export function Json({ value }: { value: unknown }) {
  if (value === undefined || value === null) return <span className="muted">—</span>;
  return <pre className="json">{JSON.stringify(value, null, 2)}</pre>;
}
