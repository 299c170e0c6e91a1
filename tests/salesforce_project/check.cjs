#!/usr/bin/env node
// Offline check: source format -> metadata format. Usage: node check-convert.cjs [projectDir] [outDir]
// deps: @salesforce/source-deploy-retrieve, fast-xml-parser
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { ComponentSet, MetadataConverter, RegistryAccess } = require('@salesforce/source-deploy-retrieve');
const { XMLValidator, XMLParser } = require('fast-xml-parser');

async function main() {
  const projectDir = path.resolve(process.argv[2] ?? '.');
  const outDir = path.resolve(process.argv[3] ?? path.join(projectDir, '.mdapi_out'));
  const project = JSON.parse(fs.readFileSync(path.join(projectDir, 'sfdx-project.json'), 'utf8'));
  const pkgDirs = project.packageDirectories.map((p) => path.join(projectDir, p.path));
  process.chdir(projectDir); // SDR reads sfdx-project.json (sourceApiVersion, sourceBehaviorOptions) from cwd
  const registry = new RegistryAccess(undefined, projectDir);
  const cs = ComponentSet.fromSource({ fsPaths: pkgDirs, registry }); // throws TypeInferenceError on unknown files
  const comps = cs.getSourceComponents().toArray();
  if (comps.length === 0) throw new Error('no source components found');

  const errors = [];
  const parser = new XMLParser({ ignoreDeclaration: true });
  for (const c of comps) {
    if (!c.xml) continue;
    const text = fs.readFileSync(c.xml, 'utf8');
    const v = XMLValidator.validate(text); // SDR itself does NOT check well-formedness
    if (v !== true) { errors.push(`${c.xml}:${v.err.line}: ${v.err.msg}`); continue; }
    const root = Object.keys(parser.parse(text))[0];
    if (root !== c.type.name) errors.push(`${c.xml}: root <${root}> but type is ${c.type.name}`);
  }
  if (errors.length) throw new Error(`invalid XML:\n  ${errors.join('\n  ')}`);

  fs.rmSync(outDir, { recursive: true, force: true });
  const res = await new MetadataConverter(registry).convert(cs, 'metadata', {
    type: 'directory', outputDirectory: outDir, genUniqueDir: false,
  });
  for (const c of comps) console.log(`  ${c.type.name}:${c.fullName}`);
  console.log(`OK: ${comps.length} components -> ${res.packagePath}`);
}
main().catch((e) => { console.error(`FAILED: ${e.name}: ${e.message}`); process.exit(1); });
