// The error every tool throws for a bad request: its message says what was wrong and what is valid.
export class ToolError extends Error {}
