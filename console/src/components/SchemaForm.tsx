/**
 * An approval's form drawn from its JSON Schema: string (text, or a list for `enum`), number,
 * integer and boolean fields. Values are typed as the schema says before they are sent; the
 * gateway checks them against the same schema (a 422 comes back field by field).
 */
export type FormValues = Record<string, string | boolean>;

interface FieldSchema {
  type?: string | string[];
  enum?: unknown[];
  description?: string;
  title?: string;
  default?: unknown;
  minimum?: number;
  maximum?: number;
}

export function fields(schema: Record<string, any> | null): Array<[string, FieldSchema]> {
  const props = (schema?.properties ?? {}) as Record<string, FieldSchema>;
  return Object.entries(props).filter(([name]) => name !== 'decision' && name !== 'reason');
}

export function SchemaForm({ schema, values, onChange }: { schema: Record<string, any> | null; values: FormValues; onChange: (v: FormValues) => void }) {
  const required = new Set<string>((schema?.required as string[] | undefined) ?? []);
  const list = fields(schema);
  if (!list.length) return null;
  return (
    <div className="schema-form">
      {list.map(([name, f]) => {
        const type = Array.isArray(f.type) ? f.type.find((t) => t !== 'null') : f.type;
        const label = <span>{f.title ?? name}{required.has(name) ? ' *' : ''}{f.description && <small className="muted"> — {f.description}</small>}</span>;
        const set = (v: string | boolean) => onChange({ ...values, [name]: v });
        if (f.enum) {
          return (
            <label key={name}>{label}
              <select name={name} value={String(values[name] ?? '')} onChange={(e) => set(e.target.value)}>
                <option value="">—</option>
                {f.enum.map((o) => <option key={String(o)} value={String(o)}>{String(o)}</option>)}
              </select>
            </label>
          );
        }
        if (type === 'boolean') {
          return <label key={name} className="check"><input type="checkbox" name={name} checked={values[name] === true} onChange={(e) => set(e.target.checked)} />{label}</label>;
        }
        const numeric = type === 'number' || type === 'integer';
        return (
          <label key={name}>{label}
            <input name={name} type={numeric ? 'number' : 'text'} step={type === 'integer' ? 1 : 'any'} min={f.minimum} max={f.maximum}
              value={String(values[name] ?? '')} onChange={(e) => set(e.target.value)} />
          </label>
        );
      })}
    </div>
  );
}

/** The form's values typed by the schema; empty fields are left out. */
export function typedValues(schema: Record<string, any> | null, values: FormValues): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, f] of fields(schema)) {
    const v = values[name];
    if (v === undefined || v === '') continue;
    const type = Array.isArray(f.type) ? f.type.find((t) => t !== 'null') : f.type;
    if (type === 'boolean') out[name] = v === true;
    else if (type === 'number' || type === 'integer') out[name] = Number(v);
    else if (f.enum) out[name] = f.enum.find((o) => String(o) === v) ?? v;
    else out[name] = v;
  }
  return out;
}
