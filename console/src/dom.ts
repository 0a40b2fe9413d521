/** Attribute values for `h`: `true` sets a boolean attribute, `false`/`null`/`undefined` omit it. */
export type Attributes = Readonly<Record<string, string | number | boolean | null | undefined>>;

/** A child for `h`: strings become text nodes (never parsed as HTML), falsy values are skipped. */
export type Child = Node | string | null | undefined | false;

/**
 * Creates an element with attributes and children. Text always goes through text nodes, so
 * plugin names, errors and log lines from the server can never inject markup.
 */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Attributes = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    element.setAttribute(name, value === true ? '' : String(value));
  }
  append(element, ...children);
  return element;
}

/** Appends children as `h` does. */
export function append(parent: Node, ...children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(typeof child === 'string' ? document.createTextNode(child) : child);
  }
}

/** Sets or removes one attribute, with `h`'s value rules. */
export function setAttribute(
  element: Element,
  name: string,
  value: string | number | boolean | null | undefined,
): void {
  if (value === false || value === null || value === undefined) element.removeAttribute(name);
  else element.setAttribute(name, value === true ? '' : String(value));
}

/** Cuts a one-line summary of a long text (errors in the plugin list). */
export function shorten(text: string, max: number): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length <= max ? line : `${line.slice(0, max - 1)}…`;
}
