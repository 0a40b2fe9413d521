'use strict';
// Finds and ends every process a terminal session started, so that closing a tab leaves nothing
// behind: background jobs (own process groups), `nohup` (ignores SIGHUP) and `setsid`
// (own session) included.
//
// A process belongs to the session when it is in the shell's session (the shell leads it:
// node-pty calls setsid) or carries the session's marker variable in its environment, which
// every descendant inherits unless it clears its environment. Linux only (/proc); elsewhere the
// shell's process group is signalled.
const { readdirSync, readFileSync } = require('node:fs');

/** Variable set in every session's environment: the session's id. */
const SESSION_MARKER_VARIABLE = 'PORTICO_TERMINAL_SESSION';
const NUL = Buffer.from([0]);

/** Fields of /proc/<pid>/stat after the command name: state, ppid, pgrp, session, ... */
function sessionIdOf(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[3]);
}

/** Whether the process's environment holds `<variable>=<session id>` as a whole entry. */
function carriesMarker(pid, sessionId) {
  let environ;
  try {
    environ = readFileSync(`/proc/${pid}/environ`);
  } catch {
    return false; // gone, or another user's process
  }
  const entry = Buffer.from(`${SESSION_MARKER_VARIABLE}=${sessionId}\0`);
  return (
    environ.subarray(0, entry.length).equals(entry) || environ.includes(Buffer.concat([NUL, entry]))
  );
}

/**
 * Pids of the processes of the session led by `leaderPid` with the given session id, this
 * process excluded. Null when /proc cannot be read.
 */
function findSessionProcesses(leaderPid, sessionId) {
  let entries;
  try {
    entries = readdirSync('/proc');
  } catch {
    return null;
  }
  const found = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    try {
      if (sessionIdOf(pid) === leaderPid) {
        found.push(pid);
        continue;
      }
    } catch {
      continue; // exited while we looked
    }
    if (carriesMarker(pid, sessionId)) found.push(pid);
  }
  return found;
}

function signal(pid, name) {
  try {
    process.kill(pid, name);
  } catch {
    // already gone (ESRCH) or not ours (EPERM): nothing more to do
  }
}

/**
 * Sends `signalName` to every process of the session; stopped jobs get SIGCONT too, so that they
 * see it. Without /proc, the shell's process group is signalled instead. Returns how many
 * processes were found (0 without /proc).
 */
function signalSession(leaderPid, sessionId, signalName) {
  const pids = findSessionProcesses(leaderPid, sessionId);
  if (pids === null) {
    signal(-leaderPid, signalName);
    return 0;
  }
  for (const pid of pids) {
    signal(pid, signalName);
    if (signalName !== 'SIGKILL') signal(pid, 'SIGCONT');
  }
  return pids.length;
}

module.exports = { SESSION_MARKER_VARIABLE, findSessionProcesses, signalSession };
