// Parse a rendered HubSpot project with HubSpot's own parser (@hubspot/project-parsing-lib),
// offline: hsproject.json, every *-hsmeta.json into the intermediate representation HubSpot
// uploads, the uids, and each feature's folder. (The full JSON-schema check downloads HubSpot's
// schemas with an account: not possible here.) Prints a JSON summary; exits 1 on any problem.
import path from 'path';
import { parseProjectConfig } from '@hubspot/project-parsing-lib/projects';
import { translate } from '@hubspot/project-parsing-lib/translate';
import { validateUid } from '@hubspot/project-parsing-lib/uid';
import { Components } from '@hubspot/project-parsing-lib/constants';
import { mapToUserFacingType } from '@hubspot/project-parsing-lib/transform';
import { isKnownPlatformVersion } from '@hubspot/project-parsing-lib/projects';

const dir = path.resolve(process.argv[2]);
const problems = [];
let summary = {};
try {
  const config = parseProjectConfig(dir);
  if (!isKnownPlatformVersion(config.platformVersion)) {
    problems.push(`unknown platformVersion ${config.platformVersion}`);
  }
  const src = path.join(dir, config.srcDir);
  const { intermediateRepresentation, skippedHsMetaFiles } = await translate(
    { projectSourceDir: src, platformVersion: config.platformVersion }, { skipValidation: true });
  if (skippedHsMetaFiles.length) problems.push(`skipped files: ${skippedHsMetaFiles}`);
  const nodes = intermediateRepresentation.intermediateNodesIndexedByUid;
  for (const [uid, node] of Object.entries(nodes)) {
    const bad = validateUid(uid);
    if (bad) problems.push(`${uid}: ${bad}`);
    const type = mapToUserFacingType(node.componentType);
    const component = Components[type];
    if (!component) { problems.push(`${uid}: unknown component type ${node.componentType}`); continue; }
    const parent = component.parentComponent ? Components[component.parentComponent].dir : '';
    const expected = path.join(parent, component.dir);
    const where = path.dirname(node.metaFilePath || path.join(expected, 'x'));
    const file = path.isAbsolute(where) ? path.relative(src, where) : where;
    if (file !== expected) problems.push(`${uid}: in ${file}, expected ${expected}`);
  }
  summary = Object.fromEntries(Object.entries(nodes).map(([uid, n]) => [uid, n.componentType]));
} catch (err) {
  problems.push(String(err && err.message ? err.message : err));
}
console.log(JSON.stringify({ components: summary, problems }));
process.exit(problems.length ? 1 : 0);
