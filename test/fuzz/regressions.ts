/**
 * Every program the fuzz test ever found failing, replayed on every run (issue 18). Add the
 * program printed by the failure (its `program: {...}` line) once the bug it found is fixed.
 */
import type { Program } from './model.js';

/** A program that once broke an invariant; `engine` limits it to the engine it failed on. */
export interface Regression {
  name: string;
  engine?: 'postgres' | 'mariadb';
  program: Program;
}

/** The regressions, oldest first. */
export const regressions: Regression[] = [];
