import { join } from 'node:path';

import ts from 'typescript';

const REPO_ROOT = join(__dirname, '..', '..');

/** A Kubernetes object as rendered: any JSON value under a known apiVersion and kind. */
export interface K8sObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly [field: string]: unknown;
}

/** One kind the schema knows: where kubernetes-models declares it. */
interface RootKind {
  readonly apiVersion: string;
  readonly kind: string;
}

/** The kinds deploy/kubernetes uses. Anything else is refused, not waved through. */
export const KNOWN_KINDS: readonly RootKind[] = [
  { apiVersion: 'v1', kind: 'ConfigMap' },
  { apiVersion: 'v1', kind: 'Secret' },
  { apiVersion: 'v1', kind: 'Service' },
  { apiVersion: 'v1', kind: 'ServiceAccount' },
  { apiVersion: 'apps/v1', kind: 'Deployment' },
  { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget' },
  { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy' },
  { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress' },
];

const ROOTS_FILE = join(REPO_ROOT, '__k8s_schema_roots__.ts');
const rootKey = (apiVersion: string, kind: string): string => `${apiVersion}/${kind}`;

/**
 * The field names Kubernetes accepts, object by object, for strict validation of manifests.
 *
 * kubernetes-models validates types, enums and required fields, but like the OpenAPI schema it
 * is generated from it allows any extra key (Kubernetes schemas never set
 * `additionalProperties: false`), so `readinessProbes:` or `runAsNonroot:` pass it and the API
 * server would drop them silently (or warn). The package ships its schema only as compiled
 * validators, not as JSON; its TypeScript declarations are generated from the same OpenAPI
 * definitions and list every property of every object. This walks a rendered object along
 * those declarations with the TypeScript checker: a key that the declared object type does not
 * have is an unknown field; maps (`labels`, `data`, `annotations`) are index signatures and
 * take any key.
 */
export class K8sSchema {
  private readonly checker: ts.TypeChecker;
  private readonly roots = new Map<string, ts.Type>();

  private constructor() {
    const imports = KNOWN_KINDS.map(
      ({ apiVersion, kind }, i) =>
        `import type { I${kind} as R${i} } from 'kubernetes-models/${apiVersion}/${kind}';`,
    );
    const fields = KNOWN_KINDS.map(
      ({ apiVersion, kind }, i) => `  ${JSON.stringify(rootKey(apiVersion, kind))}: R${i};`,
    );
    const source = `${imports.join('\n')}\nexport interface Roots {\n${fields.join('\n')}\n}\n`;
    const options: ts.CompilerOptions = {
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      types: [],
      lib: ['lib.es2020.d.ts'],
      module: ts.ModuleKind.CommonJS,
      moduleResolution: ts.ModuleResolutionKind.Node10,
      target: ts.ScriptTarget.ES2020,
    };
    const host = ts.createCompilerHost(options, true);
    const getSourceFile = host.getSourceFile.bind(host);
    const fileExists = host.fileExists.bind(host);
    const readFile = host.readFile.bind(host);
    host.getSourceFile = (name, language, onError, create) =>
      name === ROOTS_FILE
        ? ts.createSourceFile(name, source, language, true)
        : getSourceFile(name, language, onError, create);
    host.fileExists = (name) => name === ROOTS_FILE || fileExists(name);
    host.readFile = (name) => (name === ROOTS_FILE ? source : readFile(name));
    const program = ts.createProgram([ROOTS_FILE], options, host);
    this.checker = program.getTypeChecker();

    const file = program.getSourceFile(ROOTS_FILE);
    const problems = file === undefined ? [] : program.getSemanticDiagnostics(file);
    if (file === undefined || problems.length > 0) {
      const text = problems.map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
      throw new Error(`kubernetes-models declarations did not load: ${text.join('; ')}`);
    }
    const roots = file.statements.find(ts.isInterfaceDeclaration);
    if (roots === undefined) throw new Error('roots interface missing');
    const rootsType = this.checker.getTypeAtLocation(roots);
    for (const { apiVersion, kind } of KNOWN_KINDS) {
      const key = rootKey(apiVersion, kind);
      const prop = this.checker.getPropertyOfType(rootsType, key);
      const type = prop === undefined ? undefined : this.checker.getTypeOfSymbol(prop);
      // An import that did not resolve would be `any` and accept everything: refuse that.
      if (type === undefined || this.checker.getPropertyOfType(type, 'kind') === undefined)
        throw new Error(`no declaration for ${key}`);
      this.roots.set(key, type);
    }
  }

  private static loaded: K8sSchema | undefined;

  /** Built once per process: loading the declarations takes a moment. */
  public static load(): K8sSchema {
    K8sSchema.loaded ??= new K8sSchema();
    return K8sSchema.loaded;
  }

  /**
   * Paths of every field in `object` its kind does not have, e.g.
   * `spec.template.spec.containers[0].readinessProbes`; an unknown kind is reported too.
   */
  public unknownFields(object: K8sObject): string[] {
    const root = this.roots.get(rootKey(object.apiVersion, object.kind));
    if (root === undefined) return [`<no schema for ${object.apiVersion} ${object.kind}>`];
    const found: string[] = [];
    this.walk(object, root, '', found);
    return found;
  }

  private walk(value: unknown, declared: ts.Type, path: string, found: string[]): void {
    if (value === null || value === undefined || typeof value !== 'object') return;
    const type = this.checker.getNonNullableType(declared);
    if ((type.flags & (ts.TypeFlags.Any | ts.TypeFlags.Unknown)) !== 0) return;
    const members = type.isUnion() ? type.types : [type];
    if (Array.isArray(value)) {
      const element = members
        .filter((t) => this.checker.isArrayType(t))
        .map((t) => this.checker.getTypeArguments(t as ts.TypeReference)[0])
        .find((t) => t !== undefined);
      // No array in the declaration: a type error, which kubernetes-models' validate() reports.
      if (element === undefined) return;
      value.forEach((item, i) => this.walk(item, element, `${path}[${i}]`, found));
      return;
    }
    const objects = members.filter(
      (t) => (t.flags & ts.TypeFlags.Object) !== 0 && !this.checker.isArrayType(t),
    );
    if (objects.length === 0) return;
    for (const [key, child] of Object.entries(value as Record<string, unknown>)) {
      const at = path === '' ? key : `${path}.${key}`;
      const prop = objects
        .map((t) => this.checker.getPropertyOfType(t, key))
        .find((p) => p !== undefined);
      if (prop !== undefined) {
        this.walk(child, this.checker.getTypeOfSymbol(prop), at, found);
        continue;
      }
      const index = objects
        .map((t) => this.checker.getIndexInfoOfType(t, ts.IndexKind.String))
        .find((info) => info !== undefined);
      if (index !== undefined) this.walk(child, index.type, at, found);
      else found.push(at);
    }
  }
}
