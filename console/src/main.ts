/**
 * The Portico web console (served at `/`): sign-in by token, the plugin list with live status,
 * each plugin's frontend in a tab, the project and theme every plugin sees, admin controls.
 * console/README.md says how it is built.
 *
 * Stable hooks for browser tests (change them only together with the tests):
 *
 * Sign-in
 *   [data-testid="sign-in-token"]     the token input (password type)
 *   [data-testid="sign-in-submit"]    the Sign in button
 *   [data-testid="message"]           the message area's text (sign-in refusals, expired session,
 *                                     live-connection trouble, removed plugins); always present
 *
 * Top bar
 *   [data-testid="live-indicator"]    events socket state in data-state: connecting|live|reconnecting
 *   [data-testid="project-select"]    the project <select> (value "" = no project)
 *   [data-testid="theme-toggle"]      light/dark switch, aria-pressed="true" when dark
 *   [data-testid="user"]              who is signed in
 *   [data-testid="sign-out"]          the Sign out button
 *   [data-testid="menu-toggle"]       opens the plugin list on narrow screens (aria-expanded)
 *
 * Plugin list
 *   [data-testid="plugin-list"]       the <ul>
 *   [data-testid="plugin-item"]       one <li> per plugin, with data-plugin="<name>",
 *                                     data-status="<status>", data-enabled="true|false"
 *   [data-testid="plugin-open"]       inside an item: opens or focuses the plugin's tab
 *   [data-action="manage"]            inside an item, admins only: opens the admin dialog
 *
 * Tabs
 *   [data-testid="tablist"]           role=tablist
 *   [data-testid="tab"]               role=tab buttons, data-plugin="<name>", aria-selected
 *   [data-testid="tab-panel"]         role=tabpanel, data-plugin="<name>",
 *                                     data-state="waiting|loading|mounted|failed"
 *   [data-plugin-container="<name>"]  the element given to the plugin's mount(container, api)
 *   [data-testid="tab-notice"]        in a panel: not running / failed to load / socket closed
 *   [data-action="close-tab"]         in a panel: closes the tab (unmounts the plugin)
 *   [data-action="retry-load"]        in a panel after a load failure
 *   [data-testid="no-tabs"]           shown while no tab is open
 *
 * Admin dialog (admins only)
 *   [data-testid="admin-dialog"]      the <dialog>; Escape or [data-action="close-dialog"] closes it
 *   [data-action="enable"] / [data-action="disable"]   the one toggle button, by current state
 *   [data-action="restart"]
 *   [data-testid="admin-result"]      what the last action did, or the API's error message
 *   [data-testid="access-roles"]      comma-separated roles; [data-action="save-access"] saves
 *   [data-secret="<KEY>"]             one form per declared secret, data-set="true|false", with
 *                                     [data-testid="secret-state"], [data-testid="secret-input"],
 *                                     [data-action="set-secret"], [data-action="delete-secret"]
 *   [data-testid="logs"]              the output tail (role=log, at most 500 lines);
 *                                     [data-action="follow-logs"] appears when autoscroll paused;
 *                                     [data-action="reload-logs"] refetches it
 */
import { ConsoleApp } from './console-app';
import { observePluginSockets } from './socket-observer';

const root = document.getElementById('app');
if (root === null) throw new Error('index.html has no #app element');
const app = new ConsoleApp(root);
observePluginSockets((event) => app.pluginSocket(event));
void app.start();
