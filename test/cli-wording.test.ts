import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../src/cli/main.js';
import { OPTION_FLAGS } from '../src/cli/option-flags.js';
import { REPO } from './helpers/cli.js';

/*
 * CLI wording lives in cli/: library text (errors, hints, report notes) names options in library
 * terms, marked in backticks, and cli/option-flags.ts prints them as flags. These tests read every
 * string literal of src/ outside cli/ (comments are not strings, so they may cite flags).
 */

/** Every `--flag` the CLI takes, from its commands as commander holds them. */
async function cliFlags(): Promise<Set<string>> {
  const program = await buildProgram(['node', 'quantkit']);
  const flags = new Set<string>();
  for (const command of [program, ...program.commands]) for (const o of command.options) if (o.long) flags.add(o.long);
  return flags;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(path);
    // Generated files hold vendored code (tfjs's gradients, with its own messages) or bytes, not our text.
    return e.name.endsWith('.ts') &&
      !e.name.endsWith('.test.ts') &&
      !e.name.endsWith('.bench.ts') &&
      !e.name.endsWith('.generated.ts')
      ? [path]
      : [];
  });
}

interface StringSite {
  readonly file: string;
  readonly line: number;
  readonly text: string;
}

/** The text of every string and template literal in a file (a template's `${…}` parts left out). */
function stringSites(path: string): StringSite[] {
  const file = relative(REPO, path);
  const source = ts.createSourceFile(file, readFileSync(path, 'utf8'), ts.ScriptTarget.Latest, true);
  const sites: StringSite[] = [];
  const visit = (node: ts.Node) => {
    if (
      ts.isStringLiteral(node) ||
      ts.isNoSubstitutionTemplateLiteral(node) ||
      ts.isTemplateHead(node) ||
      ts.isTemplateMiddle(node) ||
      ts.isTemplateTail(node)
    ) {
      sites.push({ file, line: source.getLineAndCharacterOfPosition(node.getStart()).line + 1, text: node.text });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return sites;
}

const librarySites = () =>
  sourceFiles(join(REPO, 'src'))
    .filter((p) => !relative(REPO, p).startsWith('src/cli/'))
    .flatMap(stringSites);

describe('CLI wording only in cli/', () => {
  it('no string outside cli/ spells a CLI flag', async () => {
    const flags = await cliFlags();
    expect(flags.has('--calib') && flags.has('--no-verify') && flags.has('--external-data')).toBe(true); // the walk saw the commands
    const checked = librarySites();
    const offending = checked
      .filter((s) => [...s.text.matchAll(/--[a-z][a-z0-9-]*/g)].some((m) => flags.has(m[0])))
      .map((s) => `${s.file}:${s.line}: ${s.text}`);
    expect(offending).toEqual([]);
    expect(checked.length).toBeGreaterThan(1000);
  });

  it('every option library text marks in backticks has a flag in cli/option-flags.ts', () => {
    const unknown = librarySites().flatMap((s) =>
      [...s.text.matchAll(/`([^`\n]+)`/g)]
        .map((m) => m[1] as string)
        .filter((option) => !Object.hasOwn(OPTION_FLAGS, option))
        .map((option) => `${s.file}:${s.line}: \`${option}\``),
    );
    expect(unknown).toEqual([]);
  });

  it('every flag cli/option-flags.ts prints is one the CLI takes', async () => {
    const flags = await cliFlags();
    expect(Object.values(OPTION_FLAGS).filter((f) => !flags.has(f))).toEqual([]);
  });
});
