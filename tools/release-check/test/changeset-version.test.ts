// Runs `changeset version` on a throwaway copy of the workspace (manifests, .changeset/ and a
// one-commit git history) and checks the outcome from first principles: the bumps the
// changesets ask for, untouched private packages, CHANGELOG text, consumed changeset files.
// The repository itself is never written to.
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { afterEach, describe, expect, it } from "vitest";

const REPO_ROOT = resolve(import.meta.dirname, "../../..");
const CHANGESET_BIN = join(REPO_ROOT, "node_modules", ".bin", "changeset");
const WORKSPACE_DIRS = ["packages", "tools", "examples"] as const;
const TEST_TIMEOUT_MS = 60_000;

type Bump = "major" | "minor" | "patch";
const BUMP_RANK: Record<Bump, number> = { patch: 0, minor: 1, major: 2 };

interface Manifest {
  name: string;
  version: string;
  private?: boolean;
  peerDependencies?: Record<string, string>;
}

interface Changeset {
  file: string;
  releases: Map<string, Bump>;
  summary: string;
}

interface WorkspacePackage {
  /** Path relative to the workspace root, e.g. `packages/luo-core`. */
  dir: string;
  manifest: Manifest;
}

function readManifest(path: string): Manifest {
  return JSON.parse(readFileSync(path, "utf8")) as Manifest;
}

function listWorkspacePackages(root: string): WorkspacePackage[] {
  const found: WorkspacePackage[] = [];
  for (const group of WORKSPACE_DIRS) {
    const groupDir = join(root, group);
    if (!existsSync(groupDir)) continue;
    for (const entry of readdirSync(groupDir, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      const dir = `${group}/${entry.name}`;
      const manifestPath = join(root, dir, "package.json");
      if (existsSync(manifestPath)) found.push({ dir, manifest: readManifest(manifestPath) });
    }
  }
  return found;
}

/** Parses a changeset file: a `---` front matter of `"name": bump` lines, then the summary. */
function parseChangeset(file: string, text: string): Changeset {
  const lines = text.split(/\r?\n/);
  if (lines[0]?.trim() !== "---") throw new Error(`${file}: no front matter`);
  const end = lines.findIndex((line, i) => i > 0 && line.trim() === "---");
  if (end < 0) throw new Error(`${file}: unterminated front matter`);
  const releases = new Map<string, Bump>();
  for (const line of lines.slice(1, end)) {
    if (line.trim() === "") continue;
    const match = /^\s*["']?([^"':]+)["']?\s*:\s*(major|minor|patch)\s*$/.exec(line);
    if (match === null) throw new Error(`${file}: unparsable front matter line ${JSON.stringify(line)}`);
    releases.set(match[1]!, match[2] as Bump);
  }
  return { file, releases, summary: lines.slice(end + 1).join("\n").trim() };
}

function readChangesets(root: string): Changeset[] {
  const dir = join(root, ".changeset");
  return readdirSync(dir)
    .filter((f) => f.endsWith(".md") && f !== "README.md")
    .sort()
    .map((f) => parseChangeset(f, readFileSync(join(dir, f), "utf8")));
}

function parseVersion(version: string): [number, number, number] {
  const match = /^(\d+)\.(\d+)\.(\d+)$/.exec(version);
  if (match === null) throw new Error(`not a plain x.y.z version: ${version}`);
  return [Number(match[1]), Number(match[2]), Number(match[3])];
}

function bumpVersion(version: string, bump: Bump): string {
  const [major, minor, patch] = parseVersion(version);
  switch (bump) {
    case "major":
      return `${major + 1}.0.0`;
    case "minor":
      return `${major}.${minor + 1}.0`;
    case "patch":
      return `${major}.${minor}.${patch + 1}`;
  }
}

const tempDirs: string[] = [];

/** Copies the manifests and .changeset/ into a fresh temp dir with one git commit. */
function makeWorkspaceCopy(prepare?: (root: string) => void): string {
  const root = mkdtempSync(join(tmpdir(), "liveupdate-release-check-"));
  tempDirs.push(root);
  cpSync(join(REPO_ROOT, "package.json"), join(root, "package.json"));
  cpSync(join(REPO_ROOT, "pnpm-workspace.yaml"), join(root, "pnpm-workspace.yaml"));
  cpSync(join(REPO_ROOT, ".changeset"), join(root, ".changeset"), { recursive: true });
  for (const pkg of listWorkspacePackages(REPO_ROOT)) {
    const target = join(root, pkg.dir, "package.json");
    mkdirSync(dirname(target), { recursive: true });
    cpSync(join(REPO_ROOT, pkg.dir, "package.json"), target);
  }
  prepare?.(root);
  const git = (...args: string[]): void => {
    execFileSync("git", ["-c", "user.name=release-check", "-c", "user.email=release-check@example.invalid", ...args], {
      cwd: root,
      stdio: "pipe",
    });
  };
  git("init", "--quiet", "--initial-branch=main");
  git("add", "--all");
  git("commit", "--quiet", "--no-gpg-sign", "-m", "snapshot");
  return root;
}

function runChangesetVersion(root: string): void {
  execFileSync(CHANGESET_BIN, ["version"], { cwd: root, stdio: "pipe", env: { ...process.env, CI: "1" } });
}

afterEach(() => {
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe("changeset version on a copy of the workspace", () => {
  it(
    "applies exactly the requested bumps, writes CHANGELOGs and consumes the changesets",
    () => {
      const root = makeWorkspaceCopy();
      const changesets = readChangesets(root);
      expect(changesets.length).toBeGreaterThan(0);
      const before = new Map(listWorkspacePackages(root).map((p) => [p.manifest.name, p]));

      const requested = new Map<string, Bump>();
      for (const cs of changesets) {
        for (const [name, bump] of cs.releases) {
          expect(before.has(name), `${cs.file} names unknown package ${name}`).toBe(true);
          const previous = requested.get(name);
          if (previous === undefined || BUMP_RANK[bump] > BUMP_RANK[previous]) requested.set(name, bump);
        }
      }

      runChangesetVersion(root);
      const after = new Map(listWorkspacePackages(root).map((p) => [p.manifest.name, p]));

      for (const [name, bump] of requested) {
        const old = before.get(name)!;
        expect(after.get(name)?.manifest.version, `${name}: ${old.manifest.version} + ${bump}`).toBe(
          bumpVersion(old.manifest.version, bump),
        );
      }

      for (const [name, pkg] of before) {
        if (pkg.manifest.private !== true || requested.has(name)) continue;
        expect(after.get(name)?.manifest.version, `private ${name} has no changeset`).toBe(pkg.manifest.version);
        expect(existsSync(join(root, pkg.dir, "CHANGELOG.md")), `private ${name} got a CHANGELOG`).toBe(false);
      }

      for (const cs of changesets) {
        for (const name of cs.releases.keys()) {
          const pkg = after.get(name)!;
          const changelogPath = join(root, pkg.dir, "CHANGELOG.md");
          expect(existsSync(changelogPath), `${name} has a CHANGELOG.md`).toBe(true);
          const changelog = readFileSync(changelogPath, "utf8");
          expect(changelog).toContain(`## ${pkg.manifest.version}`);
          for (const line of cs.summary.split("\n")) {
            if (line.trim() !== "") expect(changelog, `${name} CHANGELOG carries ${cs.file}`).toContain(line.trim());
          }
        }
        expect(existsSync(join(root, ".changeset", cs.file)), `${cs.file} consumed`).toBe(false);
      }
      expect(existsSync(join(root, ".changeset", "config.json"))).toBe(true);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "a luo-core minor does not major-bump the handlers that peer-depend on it",
    () => {
      const root = makeWorkspaceCopy((dir) => {
        const changesetDir = join(dir, ".changeset");
        for (const f of readdirSync(changesetDir)) {
          if (f.endsWith(".md") && f !== "README.md") rmSync(join(changesetDir, f));
        }
        writeFileSync(
          join(changesetDir, "release-check-luo-core-minor.md"),
          '---\n"@liveupdate/luo-core": minor\n---\n\nA new luo-core feature (release-check fixture).\n',
        );
      });
      const before = listWorkspacePackages(root);
      const core = before.find((p) => p.manifest.name === "@liveupdate/luo-core");
      expect(core).toBeDefined();
      const peerDependents = before.filter((p) => p.manifest.peerDependencies?.["@liveupdate/luo-core"] !== undefined);
      expect(peerDependents.length).toBeGreaterThan(0);

      runChangesetVersion(root);
      const after = new Map(listWorkspacePackages(root).map((p) => [p.manifest.name, p.manifest.version]));

      expect(after.get("@liveupdate/luo-core")).toBe(bumpVersion(core!.manifest.version, "minor"));
      for (const pkg of peerDependents) {
        const newVersion = after.get(pkg.manifest.name)!;
        expect(
          parseVersion(newVersion)[0],
          `${pkg.manifest.name}: ${pkg.manifest.version} -> ${newVersion} (peer range ${pkg.manifest.peerDependencies!["@liveupdate/luo-core"]!})`,
        ).toBe(parseVersion(pkg.manifest.version)[0]);
      }
      expect(existsSync(join(root, ".changeset", "release-check-luo-core-minor.md"))).toBe(false);
    },
    TEST_TIMEOUT_MS,
  );
});
