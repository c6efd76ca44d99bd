// Flex Consumption plan + Linux function app (Python 3.11) with a system-assigned managed identity.
// App settings are NOT set here: appsettings.bicep applies them after the identity has its role assignments.

param location string
param tags object
param functionAppName string
param planName string

@description('Blob container URL for the Flex deployment package, e.g. https://<acct>.blob.core.windows.net/app-package')
param deploymentStorageUrl string

param alwaysReadyInstanceCount int
param instanceMemoryMB int
param maximumInstanceCount int
param perInstanceConcurrency int

param allowedCidrs array
param scmAllowedCidrs array
param allowPublicAccessForTesting bool
param minTlsCipherSuite string

// --- Inbound access restrictions -------------------------------------------------------------------------------------
// One multi-source rule for the Entra provisioning service tags. Current Entra docs name `AzureActiveDirectory`;
// older docs named `AzureActiveDirectoryDomainServices`, so both are allowed (a rule takes up to 8 tags).
// The tags are broad (all of Entra's front ends), so this is defence in depth: the bearer token is the real control.
var entraRule = {
  name: 'Allow-Entra-provisioning'
  description: 'Microsoft Entra provisioning service (SCIM client)'
  action: 'Allow'
  priority: 100
  tag: 'ServiceTag'
  ipAddress: 'AzureActiveDirectory,AzureActiveDirectoryDomainServices'
}

var adminRules = [
  for (cidr, i) in allowedCidrs: {
    name: 'Allow-admin-${i}'
    description: 'Admin / test client'
    action: 'Allow'
    priority: 200 + i
    tag: 'Default'
    ipAddress: cidr
  }
]

var scmRules = [
  for (cidr, i) in scmAllowedCidrs: {
    name: 'Allow-deploy-${i}'
    description: 'Deployment agent (func / az CLI)'
    action: 'Allow'
    priority: 100 + i
    tag: 'Default'
    ipAddress: cidr
  }
]

var alwaysReadyHttp = [
  {
    name: 'http' // the HTTP trigger group
    instanceCount: alwaysReadyInstanceCount
  }
]
var alwaysReady = alwaysReadyInstanceCount > 0 ? alwaysReadyHttp : []

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true // Linux
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: functionAppName
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientAffinityEnabled: false
    publicNetworkAccess: 'Enabled' // required for the access-restriction rules below to apply to public traffic
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      minTlsCipherSuite: empty(minTlsCipherSuite) ? null : minTlsCipherSuite
      ftpsState: 'Disabled'
      remoteDebuggingEnabled: false
      ipSecurityRestrictionsDefaultAction: allowPublicAccessForTesting ? 'Allow' : 'Deny'
      ipSecurityRestrictions: concat([entraRule], adminRules)
      // SCM (Kudu / OneDeploy publishing endpoint) has its own, stricter list: only deployment agents, never Entra.
      scmIpSecurityRestrictionsUseMain: false
      scmIpSecurityRestrictionsDefaultAction: 'Deny'
      scmIpSecurityRestrictions: scmRules
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentStorageUrl
          authentication: {
            type: 'SystemAssignedIdentity'
          }
        }
      }
      scaleAndConcurrency: {
        alwaysReady: alwaysReady
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
        triggers: {
          http: {
            perInstanceConcurrency: perInstanceConcurrency
          }
        }
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// Basic-auth (username/password) publishing is off for both FTP and SCM: deployments must use Entra ID.
resource ftpPublishingPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishingPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = site.name
output id string = site.id
output principalId string = site.identity.principalId
output defaultHostName string = site.properties.defaultHostName
