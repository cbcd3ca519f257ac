// Validates Kubernetes objects (a JSON array in the file argv[2]) against the
// object schemas of npm's kubernetes-models and, for the prometheus-operator
// and cert-manager kinds, @kubernetes-models/prometheus-operator and
// @kubernetes-models/cert-manager, in two ways:
//
//  1. the models' JSON-schema validators: types, enums, required fields,
//     formats (Kubernetes' OpenAPI does not forbid unknown fields, so a
//     misspelt field passes this step);
//  2. the models' TypeScript declarations, with the TypeScript compiler:
//     each object as a literal of its interface, so that a field the API
//     does not have is an error ("excess property"), as the API server's
//     strict field validation would report it.
//
// Prints "valid KIND NAME" per object; exits 1 if any object is invalid or of
// a kind it does not know.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');

function modelModule(apiVersion, kind) {
  const [group, version] = apiVersion.includes('/') ?
      apiVersion.split('/') : ['', apiVersion];
  if (group === 'monitoring.coreos.com') {
    return `@kubernetes-models/prometheus-operator/${apiVersion}/${kind}`;
  }
  if (group === 'cert-manager.io') {
    return `@kubernetes-models/cert-manager/${apiVersion}/${kind}`;
  }
  return group === '' ? `kubernetes-models/${version}/${kind}` :
                        `kubernetes-models/${apiVersion}/${kind}`;
}

// Type-checks each object as a literal of its model's interface; returns
// {index: [messages]} of the objects with errors.
function strictFieldErrors(objects) {
  const ts = require('typescript');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remex-k8s-'));
  const file = path.join(dir, 'objects.ts');
  const lines = objects.map((object, i) =>
    `import { I${object.kind} as T${i} } from ` +
    `${JSON.stringify(modelModule(object.apiVersion, object.kind))};`);
  const starts = [];  // The first line of each object's literal.
  objects.forEach((object, i) => {
    starts.push(lines.length);
    const literal = JSON.stringify(object, null, 1).split('\n');
    literal[0] = `export const o${i}: T${i} = ${literal[0]}`;
    lines.push(...literal);
  });
  const source = lines.join('\n');
  fs.writeFileSync(file, source);
  const modules = require.resolve.paths('kubernetes-models')
      .find((p) => fs.existsSync(path.join(p, 'kubernetes-models')));
  const program = ts.createProgram([file], {
    noEmit: true, strict: true, skipLibCheck: true, types: [],
    module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2020,
    moduleResolution: ts.ModuleResolutionKind.Node10, baseUrl: modules,
  });
  const errors = {};
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const message = ts.flattenDiagnosticMessageText(d.messageText, '\n');
    let index = -1;
    if (d.file && d.file.fileName === file) {
      const {line} = d.file.getLineAndCharacterOfPosition(d.start);
      starts.forEach((start, i) => { if (line >= start) index = i; });
      const text = lines[line].trim();
      (errors[index] = errors[index] || []).push(`${text}: ${message}`);
    } else {
      (errors[index] = errors[index] || []).push(message);
    }
  }
  fs.rmSync(dir, {recursive: true, force: true});
  return errors;
}

function main() {
  const objects = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  let failed = 0;
  let fieldErrors = {};
  try {
    fieldErrors = strictFieldErrors(objects);
  } catch (e) {
    console.log(`strict field check failed: ${e.message}`);
    failed++;
  }
  for (const message of fieldErrors[-1] || []) {
    console.log(`ERROR ${message}`);
    failed++;
  }
  for (const [index, object] of objects.entries()) {
    const label = `${object.apiVersion} ${object.kind} ` +
        `${(object.metadata || {}).name}`;
    let Model;
    try {
      const module = require(modelModule(object.apiVersion, object.kind));
      Model = module[object.kind];
    } catch (e) {
      console.log(`unknown kind ${label}: ${e.message.split('\n')[0]}`);
      failed++;
      continue;
    }
    try {
      new Model(object).validate();
    } catch (e) {
      console.log(`INVALID ${label}: ${e.message}`);
      failed++;
      continue;
    }
    if (fieldErrors[index]) {
      console.log(`INVALID ${label}: ${fieldErrors[index].join('; ')}`);
      failed++;
      continue;
    }
    console.log(`valid ${label}`);
  }
  process.exit(failed ? 1 : 0);
}

main();
