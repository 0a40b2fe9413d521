import type { PluginContext, Project, Theme } from './types';

type ContextListener = (context: PluginContext) => void;

/**
 * The context every plugin frontend sees (`api.context`): theme and project. A change notifies
 * every `onContextChange` callback; one that throws is reported and does not stop the others.
 */
export class ContextStore {
  private current: PluginContext;
  private readonly listeners = new Set<ContextListener>();

  public constructor(theme: Theme) {
    this.current = Object.freeze({ theme, project: null, session: null });
  }

  public get snapshot(): PluginContext {
    return this.current;
  }

  public setTheme(theme: Theme): void {
    if (theme !== this.current.theme) this.change({ ...this.current, theme });
  }

  public setProject(project: Project | null): void {
    const now = this.current.project;
    if (now?.name === project?.name && now?.path === project?.path) return;
    const copy =
      project === null ? null : Object.freeze({ name: project.name, path: project.path });
    this.change({ ...this.current, project: copy });
  }

  /** Adds a listener; the returned function removes it. */
  public subscribe(listener: ContextListener): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  private change(next: PluginContext): void {
    this.current = Object.freeze(next);
    for (const listener of [...this.listeners]) {
      try {
        listener(this.current);
      } catch (error) {
        console.error('A plugin’s onContextChange callback failed', error);
      }
    }
  }
}
