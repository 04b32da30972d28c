// Tests that fail because of a known server defect, in one list. Each runs and is reported
// as "todo" (node --test), so it can neither hide nor break the suite; when the server is
// fixed, the runner reports it passing and it comes off this list.
//
// Written to the documented protocol (docs/websocket-protocol.md). Empty: the server follows it.

/** Test name -> the server defect that makes it fail. */
export const SERVER_DEFECTS = {};

/** `test(name, defect(name), fn)`: marks a test of the list as todo. */
export function defect(name) {
  return SERVER_DEFECTS[name] ? { todo: `server defect: ${SERVER_DEFECTS[name]}`, timeout: 5_000 } : {};
}
