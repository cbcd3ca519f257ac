// Validates Kubernetes objects (a JSON array in the file argv[2]) against the
// object schemas of npm's kubernetes-models and, for the prometheus-operator
// kinds, @kubernetes-models/prometheus-operator. Prints "valid KIND NAME" per
// object; exits 1 if any object is invalid or of a kind it does not know.
//
// Limit: these schemas come from Kubernetes' OpenAPI, which does not forbid
// unknown fields (the API server drops or refuses them per request), so a
// misspelt field name is not caught here; types, enums, required fields and
// formats are.
'use strict';

const fs = require('fs');

function modelModule(apiVersion, kind) {
  const [group, version] = apiVersion.includes('/') ?
      apiVersion.split('/') : ['', apiVersion];
  if (group === 'monitoring.coreos.com') {
    return `@kubernetes-models/prometheus-operator/${apiVersion}/${kind}`;
  }
  return group === '' ? `kubernetes-models/${version}/${kind}` :
                        `kubernetes-models/${apiVersion}/${kind}`;
}

function main() {
  const objects = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  let failed = 0;
  for (const object of objects) {
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
      console.log(`valid ${label}`);
    } catch (e) {
      console.log(`INVALID ${label}: ${e.message}`);
      failed++;
    }
  }
  process.exit(failed ? 1 : 0);
}

main();
